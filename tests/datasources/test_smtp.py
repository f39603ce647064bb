"""The SMTP connector against a real local SMTP server (aiosmtpd): delivery with parameters, login,
STARTTLS and implicit TLS with certificate checks, header injection, idempotent Message-IDs, typed
errors and the outbound guard."""

from __future__ import annotations

import datetime
import email
import email.policy
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps.datasources.connectors import base
from apps.datasources.connectors.smtp import SMTPConnector
from tests.conftest import free_port

USER, PASSWORD = "ops", "pw-Very-Secret-42"
LOOPBACK = ["127.0.0.0/8"]


class Recorder:
    """Records every accepted envelope; refuses recipients at @refused.test."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@refused.test"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(e.original_content, policy=email.policy.default) for e in self.envelopes
        ]


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535 itself


def start(recorder: Recorder, **kwargs: Any) -> Controller:
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="mail.test",
        authenticator=authenticator,
        auth_require_tls=False,  # allow AUTH over plain text: the test server has no certificate
        **kwargs,
    )
    controller.start()
    return controller


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Controller, Recorder]]:
    recorder = Recorder()
    controller = start(recorder)
    yield controller, recorder
    controller.stop()


@pytest.fixture
def smtp(server: tuple[Controller, Recorder], settings: Any) -> tuple[dict[str, Any], Recorder]:
    settings.JETADMIN_OUTBOUND_ALLOW = LOOPBACK
    controller, recorder = server
    recorder.envelopes.clear()
    config = {
        "host": "127.0.0.1",
        "port": controller.port,
        "security": "none",
        "from_email": "Jet Ops <ops@example.com>",
        "timeout_s": 5,
    }
    return config, recorder


MAIL = {"to": ":to", "subject": "%(subject)s", "text": ":text", "cc": "audit@example.com"}


def test_send_with_params_and_check_the_received_message(smtp: tuple[dict[str, Any], Recorder]) -> None:
    config, recorder = smtp
    SMTPConnector.check_config(config)
    params = {"to": ["Ann <ann@example.com>", "bob@example.org"], "subject": "Ordre n° 7 ✓", "text": "Hi!"}
    r = SMTPConnector(config).execute({**MAIL, "bcc": "hidden@example.net", "html": "<b>Hi!</b>"}, params)
    assert r.columns == ["delivered", "id"] and r.row_count == 1 and r.rows[0][0] is True
    message_id = r.rows[0][1]
    assert message_id.startswith("<") and message_id.endswith("@example.com>")

    (envelope,) = recorder.envelopes
    assert envelope.mail_from == "ops@example.com"
    assert envelope.rcpt_tos == [
        "ann@example.com",
        "bob@example.org",
        "audit@example.com",
        "hidden@example.net",
    ]
    (msg,) = recorder.messages()
    assert msg["From"] == "Jet Ops <ops@example.com>"
    assert msg["To"] == "Ann <ann@example.com>, bob@example.org"
    assert msg["Cc"] == "audit@example.com"
    assert msg["Bcc"] is None and b"hidden@" not in envelope.original_content
    assert msg["Subject"] == "Ordre n° 7 ✓"
    assert msg["Message-ID"] == message_id and msg["Date"]
    assert msg.get_body(("plain",)).get_content().strip() == "Hi!"
    assert msg.get_body(("html",)).get_content().strip() == "<b>Hi!</b>"


def test_login_good_and_bad_credentials(smtp: tuple[dict[str, Any], Recorder]) -> None:
    config, recorder = smtp
    good = {**config, "username": USER, "password": PASSWORD}
    SMTPConnector(good).health_check()
    SMTPConnector(good).execute({"to": "ann@example.com", "subject": "s", "text": "t"})
    assert len(recorder.envelopes) == 1

    bad = SMTPConnector({**config, "username": USER, "password": "wrong-" + PASSWORD})
    for attempt in (
        bad.health_check,
        lambda: bad.execute({"to": "a@example.com", "subject": "s", "text": "t"}),
    ):
        with pytest.raises(base.AuthFailed, match="refused the login of 'ops'") as info:
            attempt()
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.args)
    assert len(recorder.envelopes) == 1


def test_session_sends_several_messages_on_one_connection(smtp: tuple[dict[str, Any], Recorder]) -> None:
    config, recorder = smtp
    with SMTPConnector(config).session() as c:
        for n in range(3):
            c.execute({"to": "ann@example.com", "subject": f"n{n}", "text": "t"})
    assert [m["Subject"] for m in recorder.messages()] == ["n0", "n1", "n2"]


def test_wrong_port_is_unreachable(smtp: tuple[dict[str, Any], Recorder]) -> None:
    config, _ = smtp
    port = free_port()
    with pytest.raises(
        base.Unreachable, match=rf"127\.0\.0\.1:{port} refused the connection: check the host"
    ):
        SMTPConnector({**config, "port": port}).execute({"to": "a@example.com", "subject": "s", "text": "t"})


def test_loopback_is_refused_without_an_allowance(
    smtp: tuple[dict[str, Any], Recorder], settings: Any
) -> None:
    config, recorder = smtp
    settings.JETADMIN_OUTBOUND_ALLOW = []
    for host in ("127.0.0.1", "localhost"):
        c = SMTPConnector({**config, "host": host})
        with pytest.raises(base.DestinationRefused, match="loopback"):
            c.execute({"to": "a@example.com", "subject": "s", "text": "t"})
        with pytest.raises(base.DestinationRefused):
            c.health_check()
    with pytest.raises(base.DestinationRefused, match="never allowed"):
        SMTPConnector({**config, "host": "169.254.169.254"}).health_check()
    assert recorder.envelopes == []


@pytest.mark.parametrize(
    "mail, params",
    [
        ({"to": "a@example.com", "subject": "Hi\r\nBcc: victim@evil.test", "text": "t"}, {}),
        ({"to": "a@example.com", "subject": ":s", "text": "t"}, {"s": "Hi\nBcc: victim@evil.test"}),
        ({"to": "a@example.com", "subject": ":s", "text": "t"}, {"s": "Hi\u2028Bcc: victim@evil.test"}),
        ({"to": "a@example.com\r\nBcc: victim@evil.test", "subject": "s", "text": "t"}, {}),
        ({"to": [":who"], "subject": "s", "text": "t"}, {"who": "a@example.com\nBcc: victim@evil.test"}),
        ({"to": "a@example.com", "reply_to": "x@example.com\r\nX-Evil: 1", "subject": "s", "text": "t"}, {}),
        ({"to": "Eve\r\nBcc: victim@evil.test <a@example.com>", "subject": "s", "text": "t"}, {}),
        ({"to": "not an address", "subject": "s", "text": "t"}, {}),
    ],
)
def test_header_injection_is_refused(
    smtp: tuple[dict[str, Any], Recorder], mail: dict[str, Any], params: dict[str, Any]
) -> None:
    config, recorder = smtp
    with pytest.raises(base.BadQuery):
        SMTPConnector(config).execute(mail, params)
    assert recorder.envelopes == []


def test_the_email_package_also_refuses_line_breaks_in_headers() -> None:
    """Defence in depth under our own check: EmailMessage (policy.default) raises on CR/LF."""
    msg = email.message.EmailMessage()
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        msg["Subject"] = "Hi\r\nBcc: victim@evil.test"


def test_idempotency_key_gives_the_same_message_id(smtp: tuple[dict[str, Any], Recorder]) -> None:
    config, recorder = smtp
    mail = {"to": "ann@example.com", "subject": "s", "text": "t"}
    ids = []
    for key in ("run-1:node-a", "run-1:node-a", "run-2:node-a", None, None):
        c = SMTPConnector(config)
        c.idempotency_key = key
        ids.append(c.execute(mail).rows[0][1])
    assert ids[0] == ids[1] != ids[2]
    assert len({ids[2], ids[3], ids[4]}) == 3
    assert [m["Message-ID"] for m in recorder.messages()] == ids
    assert "run-1" not in ids[0]  # a hash of the key, not the key
    # One key reused for other recipients (a loop over rows) does not collide with the first message.
    c = SMTPConnector(config)
    c.idempotency_key = "run-1:node-a"
    assert c.execute({**mail, "to": "bob@example.com"}).rows[0][1] != ids[0]


def test_recipients_refused(smtp: tuple[dict[str, Any], Recorder]) -> None:
    config, recorder = smtp
    with pytest.raises(base.BadQuery, match=r"refused every recipient: nobody@refused\.test: 550"):
        SMTPConnector(config).execute({"to": "nobody@refused.test", "subject": "s", "text": "t"})
    assert recorder.envelopes == []
    r = SMTPConnector(config).execute(
        {"to": ["nobody@refused.test", "ann@example.com"], "subject": "s", "text": "t"}
    )
    assert r.rows[0][0] is True and set(r.extra["refused"]) == {"nobody@refused.test"}
    assert recorder.envelopes[0].rcpt_tos == ["ann@example.com"]


def test_config_and_body_validation() -> None:
    assert SMTPConnector.secret_fields() == ["password"]
    with pytest.raises(base.ConfigInvalid) as info:
        SMTPConnector.check_config({"host": "mail.example.com", "security": "ssl", "extra": 1})
    assert {"from_email", "security", "config"} <= set(info.value.errors)
    with pytest.raises(base.ConfigInvalid, match="from_email"):
        SMTPConnector.check_config({"host": "mail.example.com", "from_email": "ops@x.com\r\nBcc: y@z.com"})
    c = SMTPConnector({"host": "mail.example.com", "from_email": "ops@example.com"})
    assert c.validate({"to": "a@example.com", "subject": "s", "text": "t"}) == []
    assert c.validate({"to": "a@example.com", "subject": "s", "body": "t"}) == [
        "Unknown field 'body'; use to, cc, bcc, reply_to, subject, text, html.",
        "text is required.",
    ]
    with pytest.raises(base.BadQuery, match="Missing query parameter: to"):
        c.execute({"to": ":to", "subject": "s", "text": "t"}, {})


# --- TLS: a private CA, a certificate for "localhost" only, servers on 127.0.0.1 ---------------------
def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> ssl.SSLContext:
    """A server context for "localhost" whose CA the client trusts (via SSL_CERT_FILE)."""
    settings.JETADMIN_OUTBOUND_ALLOW = LOOPBACK
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("jetadmin test CA", ca_key, None)
    leaf = _cert("localhost", key, ("jetadmin test CA", ca_key))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    return context


def test_starttls_verifies_the_configured_hostname_not_the_address(tls: ssl.SSLContext) -> None:
    recorder = Recorder()
    controller = start(recorder, tls_context=tls, require_starttls=True)
    try:
        config = {
            "host": "localhost",  # resolves to 127.0.0.1; the certificate names only "localhost"
            "port": controller.port,
            "security": "starttls",
            "username": USER,
            "password": PASSWORD,
            "from_email": "ops@example.com",
        }
        SMTPConnector(config).health_check()
        SMTPConnector(config).execute({"to": "ann@example.com", "subject": "over TLS", "text": "t"})
        assert [m["Subject"] for m in recorder.messages()] == ["over TLS"]
        # The same server by address: the certificate does not name 127.0.0.1, so TLS must fail.
        with pytest.raises(base.Unreachable, match=r"TLS certificate .* could not be verified"):
            SMTPConnector({**config, "host": "127.0.0.1"}).health_check()
        # Plain text cannot log in or send: the server requires STARTTLS first.
        with pytest.raises(base.Unreachable, match="requires STARTTLS"):
            SMTPConnector({**config, "security": "none"}).health_check()
        anonymous = {k: v for k, v in config.items() if k not in ("username", "password")}
        with pytest.raises(base.Unreachable, match="requires STARTTLS"):
            SMTPConnector({**anonymous, "security": "none"}).execute(
                {"to": "a@example.com", "subject": "s", "text": "t"}
            )
        assert len(recorder.envelopes) == 1
    finally:
        controller.stop()


def test_implicit_tls(tls: ssl.SSLContext, smtp: tuple[dict[str, Any], Recorder]) -> None:
    recorder = Recorder()
    controller = start(recorder, ssl_context=tls)
    try:
        config = {
            "host": "localhost",
            "port": controller.port,
            "security": "tls",
            "from_email": "ops@example.com",
        }
        SMTPConnector(config).execute({"to": "ann@example.com", "subject": "implicit", "text": "t"})
        assert [m["Subject"] for m in recorder.messages()] == ["implicit"]
        plain, _ = smtp  # a plain-text server, addressed with security "tls"
        with pytest.raises(base.Unreachable, match="check the security setting"):
            SMTPConnector({**plain, "host": "localhost", "security": "tls"}).health_check()
        with pytest.raises(base.Unreachable, match="does not offer STARTTLS"):
            SMTPConnector({**plain, "security": "starttls"}).health_check()
    finally:
        controller.stop()


def test_connects_to_the_checked_address_without_a_second_lookup(
    smtp: tuple[dict[str, Any], Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once, by the guard; smtplib connects to what the guard returned."""
    config, recorder = smtp
    seen: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        seen.append((host, port))
        return ["127.0.0.1"]

    monkeypatch.setattr("jetadmin.outbound.resolve", resolve)
    c = SMTPConnector({**config, "host": "mail.does-not-resolve.invalid"})
    assert c.execute({"to": "ann@example.com", "subject": "pinned", "text": "t"}).rows[0][0] is True
    assert seen == [("mail.does-not-resolve.invalid", config["port"])]
    assert [m["Subject"] for m in recorder.messages()] == ["pinned"]


def test_a_silent_server_is_unreachable_within_the_timeout(smtp: tuple[dict[str, Any], Recorder]) -> None:
    """A port that accepts TCP but never greets: the connector gives up after its timeout."""
    config, _ = smtp
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody ever says 220
        started = time.monotonic()
        with pytest.raises(base.Unreachable, match=r"did not answer within 0\.5 s"):
            SMTPConnector({**config, "port": silent.getsockname()[1]}).execute(
                {"to": "a@example.com", "subject": "s", "text": "t"}, timeout_s=0.5
            )
        assert time.monotonic() - started < 3
