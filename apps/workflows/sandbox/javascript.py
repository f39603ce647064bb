"""Run user JavaScript in a throwaway child process: V8 via mini-racer, inside bubblewrap if present.

Layers, outermost first: bubblewrap (read-only file system with only the Python runtime mounted, no
network, own PID namespace, dies with its parent) when ``bwrap`` is installed; a child process whose
whole process group the host kills at the wall-clock deadline; V8's own timeout and hard heap limit;
a V8 context with no ``require``, ``process``, file or network APIs, and a deep-frozen ``ctx``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("js_runner.py")
DEFAULT_MAX_MEMORY = 64 * 1024 * 1024
# Growth of the runner process after V8 started: typed arrays and wasm memory live outside the heap cap.
DEFAULT_MAX_PROCESS_MEMORY = 128 * 1024 * 1024
MAX_OUTPUT = 4 * 1024 * 1024
GRACE_S = 2.0
V8_ABORT_CODES = {-5, -6, 128 + 5, 128 + 6}  # SIGTRAP / SIGABRT, directly or as reported by bubblewrap


class SandboxError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0
    max_memory: int = DEFAULT_MAX_MEMORY
    max_process_memory: int = DEFAULT_MAX_PROCESS_MEMORY
    max_output: int = MAX_OUTPUT


def _bwrap_prefix() -> list[str]:
    bwrap = shutil.which("bwrap")
    if not bwrap or os.environ.get("JETADMIN_JS_NO_BWRAP"):
        return []
    binds: list[str] = []
    roots = {
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/etc/ld.so.cache",
        sys.base_prefix,
        sys.prefix,
        str(RUNNER.parent),
    }
    for path in sorted(roots):
        if os.path.exists(path):
            binds += ["--ro-bind", path, path]
    # Order matters: bwrap mounts in sequence, so the empty /tmp comes first and the read-only binds
    # (the project and its virtualenv may live under /tmp, as in CI's clean clones) on top of it.
    return [
        bwrap,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",  # noqa: S108 - a fresh, empty tmpfs inside the sandbox, not the host's /tmp
        *binds,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--",
    ]


_BWRAP_OK: bool | None = None


def _command() -> list[str]:
    global _BWRAP_OK
    python = [sys.executable, "-I", str(RUNNER)]
    prefix = _bwrap_prefix()
    if prefix and _BWRAP_OK is None:
        check = f"import os, py_mini_racer; assert os.path.exists({str(RUNNER)!r})"
        probe = subprocess.run([*prefix, sys.executable, "-I", "-c", check], capture_output=True, timeout=20)  # noqa: S603
        _BWRAP_OK = probe.returncode == 0
        if not _BWRAP_OK:  # loud: from here on user code runs with the inner layers only
            logger.error(
                "bubblewrap is installed but its probe run failed (exit %s: %s); user JavaScript runs "
                "WITHOUT the jail",
                probe.returncode,
                probe.stderr.decode(errors="replace").strip()[-300:],
            )
    return [*prefix, *python] if prefix and _BWRAP_OK else python


def run_js(code: str, context: Any, limits: Limits = Limits()) -> Any:
    """Run ``code`` (a function body; ``ctx`` in scope) and return its JSON-able result."""
    request = json.dumps(
        {
            "code": code,
            "context": context,
            "timeout_ms": int(limits.timeout_s * 1000),
            "max_memory": limits.max_memory,
            "max_process_memory": limits.max_process_memory,
        },
        default=str,
    ).encode()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, user code only travels on stdin
        _command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    deadline = time.monotonic() + limits.timeout_s + GRACE_S
    try:
        if proc.stdin is None or proc.stdout is None:
            raise SandboxError("sandbox_crashed", "The sandbox could not be started.")
        proc.stdin.write(request)
        proc.stdin.close()
        out = _read_capped(proc, deadline, limits.max_output)
    finally:
        _kill(proc)
    if out is None:
        raise SandboxError("timeout", f"The script ran past its time limit of {limits.timeout_s:g} s.")
    if len(out) > limits.max_output:
        raise SandboxError(
            "output_too_large", f"The script's result is larger than {limits.max_output} bytes."
        )
    try:
        reply = json.loads(out)
    except ValueError:
        if proc.returncode in V8_ABORT_CODES:  # V8 aborts the process when it cannot get more memory
            raise SandboxError("memory_limit", "The script used too much memory (V8 aborted).") from None
        raise SandboxError("sandbox_crashed", "The script's sandbox exited without a result.") from None
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise SandboxError(
            str(error.get("code", "js_error")), str(error.get("message", "The script failed."))
        )
    return reply.get("value")


def _read_capped(proc: subprocess.Popen[bytes], deadline: float, cap: int) -> bytes | None:
    import selectors

    if proc.stdout is None:
        return None
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not sel.select(timeout=left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > cap or chunk.endswith(b"\n"):  # the reply is one line: no need to wait for exit
                return b"".join(chunks)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
