"""Email over SMTP (stdlib ``smtplib`` + ``email.message.EmailMessage``).

The query body is one message: ``{to, subject, text, html?, cc?, bcc?, reply_to?}``; a value that is
exactly ``:name`` / ``%(name)s`` takes that parameter (``http.fill``). Subjects and addresses with a
line break are refused (header injection); addresses are parsed and re-formatted, never pasted.

Outbound safety: the host is resolved once through ``jetadmin.outbound.resolve`` (every address
checked) and the TCP connection goes to a checked address — :class:`_PinnedSMTP` overrides
``smtplib``'s socket factory, so smtplib never resolves the name itself. The configured *hostname*
stays smtplib's ``_host``, which is what STARTTLS and implicit TLS pass as ``server_hostname``: SNI
and certificate verification are for the name the user configured, not for the IP address.
Certificates are always verified (``ssl.create_default_context()``; smtplib's own default for
``starttls()`` would not verify).

``self.idempotency_key`` (set by the caller, e.g. a workflow node) makes the Message-ID a hash of
that key, so a retried send carries the same Message-ID and receivers can recognise the duplicate.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any

from .base import (
    AuthFailed,
    BadQuery,
    ConfigInvalid,
    Connector,
    QueryTimeout,
    Result,
    Unreachable,
    checked_addresses,
    register,
)
from .http import fill

FIELDS = ("to", "cc", "bcc", "reply_to", "subject", "text", "html")
MAX_RECIPIENTS = 100
MAX_SUBJECT = 998
# Everything str.splitlines() breaks on, and NUL: none of it belongs in a header value.
_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_ADDR_SPEC = re.compile(r"^[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+$")


def _has_break(value: str) -> bool:
    return any(ch in _BREAKS for ch in value)


def parse_addresses(value: Any, field: str) -> list[tuple[str, str]]:
    """``(display name, addr-spec)`` pairs for a header value: one address, several separated by
    commas, or a list of them. BadQuery names the field and the bad value."""
    items = value if isinstance(value, list) else [value]
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise BadQuery(f"{field} must be an email address or a list of them.")
        if _has_break(item):
            raise BadQuery(f"{field} must not contain line breaks.")
        for name, addr in getaddresses([item]):
            if not _ADDR_SPEC.match(addr) or _has_break(name):
                raise BadQuery(f"{field}: {item[:100]!r} is not a valid email address.")
            pairs.append((name, addr))
    return pairs


def _address(pair: tuple[str, str]) -> Address:
    local, _, domain = pair[1].rpartition("@")
    return Address(display_name=pair[0], username=local, domain=domain)


def _text(value: Any, field: str, *, header: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadQuery(f"{field} must be text.")
    text = str(value)
    if header and _has_break(text):
        raise BadQuery(f"{field} must not contain line breaks.")
    return text


class _PinnedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that opens its TCP connection to pre-checked addresses (the ``host`` smtplib
    hands to ``_get_socket`` is ignored) and keeps ``_host`` = the configured hostname, which
    ``starttls()`` and implicit TLS use as ``server_hostname`` (SNI + certificate name check)."""

    def __init__(
        self,
        hostname: str,
        addresses: list[str],
        *,
        timeout: float,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(timeout=timeout)  # no host: nothing is connected (or resolved) here
        self._host = hostname
        self._addresses = addresses
        self._implicit_tls = implicit_tls

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        last: OSError | None = None
        for address in self._addresses:
            try:
                sock = socket.create_connection((address, port), timeout, self.source_address)
            except OSError as exc:
                last = exc
                continue
            if self._implicit_tls is not None:
                try:
                    return self._implicit_tls.wrap_socket(sock, server_hostname=self._host)
                except BaseException:
                    sock.close()
                    raise
            return sock
        raise last or OSError(f"no address for {self._host}")


@register
class SMTPConnector(Connector):
    type = "smtp"
    name = "Email (SMTP)"
    category = "messaging"
    config_schema = {
        "type": "object",
        "required": ["host", "from_email"],
        "additionalProperties": False,
        "properties": {
            "host": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^\s/@]+$"},
            "port": {
                "type": "integer",
                "minimum": 1,
                "maximum": 65535,
                "default": 587,
                "description": "587 for STARTTLS, 465 for TLS (used when no port is given), 25 for none.",
            },
            "security": {"type": "string", "enum": ["none", "starttls", "tls"], "default": "starttls"},
            "username": {"type": "string", "maxLength": 320},
            "password": {"type": "string", "maxLength": 1000, "writeOnly": True},
            "from_email": {"type": "string", "minLength": 3, "maxLength": 320},
            "timeout_s": {"type": "number", "minimum": 1, "maximum": 120, "default": 10},
        },
    }

    idempotency_key: str | None = None
    smtp: _PinnedSMTP | None = None

    # --- config ----------------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Any) -> dict[str, Any]:
        checked = super().check_config(config)
        try:
            sender = parse_addresses(checked["from_email"], "from_email")
        except BadQuery as exc:
            raise ConfigInvalid(exc.message, {"from_email": [exc.message]}) from None
        if len(sender) != 1:
            message = "from_email must be exactly one address."
            raise ConfigInvalid(message, {"from_email": [message]})
        if checked.get("password") and not checked.get("username"):
            message = "A password needs a username."
            raise ConfigInvalid(message, {"username": [message]})
        return checked

    @property
    def security(self) -> str:
        return str(self.config.get("security") or "starttls")

    @property
    def port(self) -> int:
        return int(self.config.get("port") or (465 if self.security == "tls" else 587))

    def label(self) -> str:
        return f"SMTP server {self.config.get('host')}:{self.port}"

    def sender(self) -> tuple[str, str]:
        try:
            pairs = parse_addresses(self.config.get("from_email"), "from_email")
        except BadQuery as exc:
            raise ConfigInvalid(exc.message, {"from_email": [exc.message]}) from None
        if len(pairs) != 1:
            raise ConfigInvalid("from_email must be exactly one address.")
        return pairs[0]

    # --- lifecycle -------------------------------------------------------------------------------
    def connect(self) -> None:
        self.close()
        self.smtp = self._open(float(self.config.get("timeout_s", 10)))

    def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def health_check(self) -> None:
        timeout_s = float(self.config.get("timeout_s", 10))
        smtp = self._open(timeout_s)
        try:
            code, reply = smtp.noop()
            if code != 250:
                raise Unreachable(f"{self.label()} answered NOOP with {code}: {_reply(reply)}")
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, connecting=True, timeout_s=timeout_s) from None
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _open(self, timeout_s: float) -> _PinnedSMTP:
        """Connected, EHLO'd, TLS'd and logged in as configured; typed errors otherwise."""
        c = self.config
        host = str(c.get("host") or "")
        addresses = checked_addresses(host, self.port)
        context = ssl.create_default_context()  # verifies the chain and the hostname
        smtp = _PinnedSMTP(
            host.strip("[]"),
            addresses,
            timeout=timeout_s,
            implicit_tls=context if self.security == "tls" else None,
        )
        try:
            code, reply = smtp.connect(host, self.port)
            if code != 220:
                raise Unreachable(f"{self.label()} did not greet with 220 but {code}: {_reply(reply)}")
            smtp.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise Unreachable(
                        f"{self.label()} does not offer STARTTLS: set security to 'tls' (usually port "
                        "465) or, only on a trusted network, 'none'."
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if c.get("username"):
                if not smtp.has_extn("auth"):
                    hint = " over an unencrypted connection" if self.security == "none" else ""
                    raise AuthFailed(
                        f"{self.label()} does not offer login (AUTH){hint}: check the security setting, "
                        "or leave username and password empty if it needs none."
                    )
                smtp.login(str(c["username"]), str(c.get("password") or ""))
        except (Unreachable, AuthFailed):
            smtp.close()
            raise
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise self._error(exc, connecting=True, timeout_s=timeout_s) from None
        return smtp

    # --- work ------------------------------------------------------------------------------------
    def validate(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["An email is an object: {to, subject, text, html?, cc?, bcc?, reply_to?}."]
        problems = [f"Unknown field {key!r}; use {', '.join(FIELDS)}." for key in body if key not in FIELDS]
        problems += [
            f"{key} is required." for key in ("to", "subject", "text") if body.get(key) in (None, "")
        ]
        for key in ("to", "cc", "bcc", "reply_to"):
            value = body.get(key)
            if value is not None and not isinstance(value, str | list):
                problems.append(f"{key} must be an address or a list of addresses.")
        return problems

    def build(self, body: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[EmailMessage, list[str]]:
        """The message and its envelope recipients (to + cc + bcc; bcc is not a header)."""
        mail = fill(dict(body), params)
        sender = self.sender()
        groups = {
            key: parse_addresses(mail[key], key) if mail.get(key) not in (None, "", []) else []
            for key in ("to", "cc", "bcc", "reply_to")
        }
        if not groups["to"]:
            raise BadQuery("to is required.")
        recipients = list(dict.fromkeys(a for key in ("to", "cc", "bcc") for _, a in groups[key]))
        if len(recipients) > MAX_RECIPIENTS:
            raise BadQuery(f"At most {MAX_RECIPIENTS} recipients per email, not {len(recipients)}.")
        subject = _text(mail.get("subject"), "subject", header=True)
        if len(subject) > MAX_SUBJECT:
            raise BadQuery(f"subject is longer than {MAX_SUBJECT} characters.")
        msg = EmailMessage()  # email.policy.default: it refuses CR/LF in header values as well
        try:
            msg["From"] = _address(sender)
            msg["To"] = tuple(_address(p) for p in groups["to"])
            if groups["cc"]:
                msg["Cc"] = tuple(_address(p) for p in groups["cc"])
            if groups["reply_to"]:
                msg["Reply-To"] = tuple(_address(p) for p in groups["reply_to"])
            msg["Subject"] = subject
            msg["Date"] = formatdate(usegmt=True)
            msg["Message-ID"] = self.message_id(sender[1], recipients)
            msg.set_content(_text(mail.get("text"), "text"))
            if mail.get("html") not in (None, ""):
                msg.add_alternative(_text(mail["html"], "html"), subtype="html")
        except (ValueError, TypeError) as exc:  # a header the email package refuses
            raise BadQuery(f"Cannot build the email: {exc}") from None
        return msg, recipients

    def message_id(self, sender: str, recipients: list[str]) -> str:
        """A fresh Message-ID, or with ``idempotency_key`` one derived from the key and the recipients:
        the same send retried gets the same ID, while one key reused for different recipients (a loop
        over rows) does not make receivers collapse distinct messages into one."""
        domain = sender.rpartition("@")[2]
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            domain = "jetadmin.invalid"
        if self.idempotency_key:
            seed = "\0".join(["jetadmin-smtp", self.idempotency_key, *sorted(recipients)])
            digest = hashlib.sha256(seed.encode()).hexdigest()[:40]
            return f"<{digest}@{domain}>"
        return make_msgid(domain=domain)

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        self.require_valid(body)
        msg, recipients = self.build(body, dict(params or {}))
        started = time.monotonic()
        own = self.smtp is None
        smtp = self.smtp or self._open(min(timeout_s, float(self.config.get("timeout_s", 10))))
        try:
            if smtp.sock is not None:
                smtp.sock.settimeout(timeout_s)
            refused = smtp.send_message(msg, from_addr=self.sender()[1], to_addrs=recipients)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, connecting=False, timeout_s=timeout_s) from None
        finally:
            if own:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        extra: dict[str, Any] = {}
        if refused:  # some recipients were refused, the others accepted the message
            extra["refused"] = {addr: f"{code} {_reply(text)}" for addr, (code, text) in refused.items()}
        row = [True, msg["Message-ID"]]
        return Result(["delivered", "id"], [row], 1, False, (time.monotonic() - started) * 1000, extra)

    # --- errors ----------------------------------------------------------------------------------
    def _error(self, exc: BaseException, *, connecting: bool, timeout_s: float) -> Exception:
        """A typed error for ``exc``; never the password (auth failures carry only the reply code)."""
        where = self.label()
        if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
            exc = exc.__context__  # smtplib reports a read timeout as a disconnect
        if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 530:
            if "starttls" in _reply(exc.smtp_error).lower():
                return Unreachable(f"{where} requires STARTTLS: set security to 'starttls'.")
            if not isinstance(exc, smtplib.SMTPAuthenticationError):
                return AuthFailed(f"{where} requires a login: set the username and password.")
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return AuthFailed(
                f"{where} refused the login of {self.config.get('username')!r} ({exc.smtp_code}): check "
                "the username and password."
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            if not connecting:  # e.g. non-ASCII addresses and no SMTPUTF8
                return BadQuery(f"{where} cannot send this message: {exc}")
            return Unreachable(f"{where} does not support what this datasource needs: {exc}")
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refused = "; ".join(
                f"{addr}: {code} {_reply(text)}" for addr, (code, text) in list(exc.recipients.items())[:5]
            )
            return BadQuery(f"{where} refused every recipient: {refused}")
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return BadQuery(
                f"{where} refused the sender {self.sender()[1]} ({exc.smtp_code} {_reply(exc.smtp_error)})."
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            text = f"{exc.smtp_code} {_reply(exc.smtp_error)}"
            if connecting:
                return Unreachable(f"{where} refused the session ({text}).")
            if 400 <= exc.smtp_code < 500:
                return Unreachable(f"{where} temporarily refused the message ({text}); try again later.")
            return BadQuery(f"{where} refused the message ({text}).")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return Unreachable(f"{where} closed the connection unexpectedly.")
        if isinstance(exc, smtplib.SMTPException):
            return Unreachable(f"{where}: {exc}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return Unreachable(
                f"The TLS certificate of {where} could not be verified ({exc.verify_message}): check the "
                "host name; it must match the server's certificate."
            )
        if isinstance(exc, ssl.SSLError):
            return Unreachable(
                f"TLS with {where} failed ({exc.reason or type(exc).__name__}): check the security setting "
                "('tls' is usually port 465, 'starttls' port 587)."
            )
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
            if connecting:
                return Unreachable(f"{where} did not answer within {timeout_s:g} s.")
            return QueryTimeout(f"{where} did not accept the message within {timeout_s:g} s.")
        if isinstance(exc, ConnectionRefusedError):
            return Unreachable(f"{where} refused the connection: check the host and port.")
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return Unreachable(f"Cannot reach {where}: {reason}.")


def _reply(text: bytes | str) -> str:
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return " ".join(value.split())[:300]
