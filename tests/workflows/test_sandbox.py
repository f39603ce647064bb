"""The JavaScript sandbox under attack: every escape attempt fails with a clear error, nothing leaks.

Most cases call :func:`run_js` directly (one child process each, ~0.2 s); the ``battery`` fixture
runs the attack table concurrently once and each parametrized test checks its own row. A few cases
go through the real engine (``run_graph``) to show that a failing script fails its node and run
while the worker and other runs carry on. The last test checks that no runner process is left.

Regression tests for bugs found here are at the end (``test_bug_*``): mini-racer hanging in its
teardown after the reply (the runner now leaves with ``os._exit`` and the host reads one reply line),
memory outside V8's heap (typed arrays, wasm: capped by the runner's RLIMIT_DATA), unserialisable and
Promise results, and error line numbers (now the user's own).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.sandbox import javascript
from apps.workflows.sandbox.javascript import GRACE_S, Limits, SandboxError, run_js
from tests.conftest import missing_service

PASSWD_MARKER = "root:x:0:0"  # the first line of /etc/passwd on the host


# --- process bookkeeping -----------------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[str, int, str]]:
    """``{pid: (state, ppid, cmdline)}`` from /proc."""
    table: dict[int, tuple[str, int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (fields[0], int(fields[1]), cmdline)
    return table


def _live(needle: str) -> list[tuple[int, str]]:
    return [
        (pid, cmd[:160])
        for pid, (state, _, cmd) in _proc_table().items()
        if needle in cmd and state not in "ZX"
    ]


def _leftover_runners() -> list[tuple[int, str]]:
    """Live processes running js_runner.py that are ours (descend from this process) or orphans.

    A runner's ancestry is runner → bubblewrap's namespace init → bubblewrap → the host process; the
    walk climbs past every process whose command line names js_runner.py. Runners of other test
    sessions (whose chain ends in their own host process) are not counted.
    """
    table = _proc_table()
    me = os.getpid()
    left = []
    for pid, (state, ppid, cmd) in table.items():
        if "js_runner.py" not in cmd or state in "ZX" or pid == me:
            continue
        parent = ppid
        while parent != me and parent in table and "js_runner.py" in table[parent][2]:
            parent = table[parent][1]
        if parent == me or parent <= 1:
            left.append((pid, cmd[:160]))
    return left


def _wait_gone(probe: Callable[[], list[tuple[int, str]]], grace: float = 3.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + grace
    while (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


# --- the attack table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attack:
    id: str
    code: str
    error: str  # expected SandboxError code
    says: str  # expected fragment of the message
    context: Any = None


FILE_READS = [
    Attack(
        "require-fs",
        "return require('fs').readFileSync('/etc/passwd', 'utf8')",
        "js_error",
        "require is not defined",
    ),
    Attack(
        "static-import-fs",
        "import fs from 'fs'; return fs.readFileSync('/etc/passwd')",
        "js_error",
        "SyntaxError",
    ),
    Attack("process-binding-fs", "return process.binding('fs')", "js_error", "process is not defined"),
    Attack("d8-read", "return read('/etc/passwd')", "js_error", "read is not defined"),
    Attack("d8-readbuffer", "return readbuffer('/etc/passwd')", "js_error", "readbuffer is not defined"),
    Attack("d8-load", "return load('/etc/passwd')", "js_error", "load is not defined"),
    Attack("d8-readline", "return readline()", "js_error", "readline is not defined"),
    Attack("quickjs-std", "return std.loadFile('/etc/passwd')", "js_error", "std is not defined"),
    Attack("deno", "return Deno.readTextFileSync('/etc/passwd')", "js_error", "Deno is not defined"),
    Attack("bun", "return Bun.file('/etc/passwd').text()", "js_error", "Bun is not defined"),
    Attack("fetch-file-url", "return fetch('file:///etc/passwd')", "js_error", "fetch is not defined"),
    Attack("worker", "return new Worker('/etc/passwd')", "js_error", "Worker is not defined"),
    Attack(
        "import-scripts", "return importScripts('/etc/passwd')", "js_error", "importScripts is not defined"
    ),
    Attack(
        "wasm-wasi",
        "return new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([0])))",
        "js_error",
        "CompileError",
    ),
]

NETWORK = [
    Attack("fetch", "return fetch('http://127.0.0.1:5432/')", "js_error", "fetch is not defined"),
    Attack(
        "xhr",
        "const x = new XMLHttpRequest(); x.open('GET', 'http://example.com'); return 1",
        "js_error",
        "XMLHttpRequest is not defined",
    ),
    Attack(
        "websocket", "return new WebSocket('ws://127.0.0.1:6379/')", "js_error", "WebSocket is not defined"
    ),
    Attack(
        "event-source",
        "return new EventSource('http://example.com')",
        "js_error",
        "EventSource is not defined",
    ),
    Attack(
        "beacon",
        "return navigator.sendBeacon('http://example.com', 'x')",
        "js_error",
        "navigator is not defined",
    ),
]

HOST_OBJECTS = [
    Attack("require", "return require('child_process').execSync('id')", "js_error", "require is not defined"),
    Attack("process", "return process.env", "js_error", "process is not defined"),
    Attack(
        "globalThis-process",
        "return globalThis.process.env",
        "js_error",
        "Cannot read properties of undefined",
    ),
    Attack(
        "this-constructor",
        "return this.constructor.constructor('return process')()",
        "js_error",
        "Cannot read properties of undefined",
    ),
    Attack(
        "function-constructor",
        "return (function () {}).constructor('return process')().env",
        "js_error",
        "process is not defined",
    ),
    Attack(
        "ctx-constructor",
        "return ctx.constructor.constructor('return process')().env",
        "js_error",
        "process is not defined",
        {"a": 1},
    ),
    Attack(
        "sloppy-global",
        "return Function('return this')().process.mainModule.require('fs')",
        "js_error",
        "Cannot read properties of undefined",
    ),
    Attack("indirect-eval", "return (0, eval)('process').exit(1)", "js_error", "process is not defined"),
    Attack("module-exports", "return module.exports", "js_error", "module is not defined"),
    Attack("buffer", "return Buffer.from('x')", "js_error", "Buffer is not defined"),
    Attack(
        "wrapper-breakout",
        "return 1 })(ctx); return JSON.stringify(process.env); (function () {",
        "js_error",
        "process is not defined",
    ),
]

CTX_WRITES = [
    Attack("ctx-assign", "ctx.a = 2; return ctx.a", "js_error", "read only property 'a'"),
    Attack("ctx-nested-assign", "ctx.o.b = 2; return ctx.o.b", "js_error", "read only property 'b'"),
    Attack("ctx-array-push", "ctx.list.push(1); return ctx.list", "js_error", "not extensible"),
    Attack("ctx-add", "ctx.z = 1; return ctx.z", "js_error", "not extensible"),
    Attack("ctx-delete", "delete ctx.a; return ctx", "js_error", "Cannot delete property 'a'"),
    Attack(
        "ctx-define",
        "Object.defineProperty(ctx, 'z', {value: 1}); return ctx.z",
        "js_error",
        "not extensible",
    ),
    Attack(
        "ctx-assign-all", "Object.assign(ctx, {a: 2}); return ctx.a", "js_error", "read only property 'a'"
    ),
    Attack(
        "ctx-set-proto",
        "Object.setPrototypeOf(ctx, {evil: 1}); return ctx.evil",
        "js_error",
        "not extensible",
    ),
    Attack("ctx-proto-assign", "ctx.__proto__ = {evil: 1}; return ctx.evil", "js_error", "not extensible"),
    Attack(
        "ctx-nested-proto",
        "Object.setPrototypeOf(ctx.o, Array.prototype); return ctx.o.length",
        "js_error",
        "not extensible",
    ),
]

RESOURCES = [
    Attack(
        "heap-bomb",
        "const a = []; while (true) { a.push(new Array(1e6).fill(1)); }",
        "memory_limit",
        "too much memory",
    ),
    Attack("string-bomb", "let s = 'x'; while (true) { s = s + s; }", "js_error", "Invalid string length"),
    Attack("stack-bomb", "const f = () => f(); return f()", "js_error", "Maximum call stack size exceeded"),
    Attack("huge-output", "return 'x'.repeat(10 * 1024 * 1024)", "output_too_large", "larger than"),
    Attack(
        "huge-output-array",
        "return Array.from({length: 600000}, (_, i) => 'item' + i)",
        "output_too_large",
        "larger than",
    ),
]

ERRORS = [
    Attack("syntax-error", "return (", "js_error", "SyntaxError"),
    Attack("syntax-error-keyword", "return function function", "js_error", "SyntaxError"),
    Attack("throw-error", "throw new Error('boom: ' + ctx.a)", "js_error", "Error: boom: 1", {"a": 1}),
    Attack("throw-type-error", "return null.x", "js_error", "TypeError: Cannot read properties of null"),
    Attack("throw-string", "throw 'plain words'", "js_error", "plain words"),
    Attack("circular-result", "const a = {}; a.self = a; return a", "js_error", "circular structure"),
    Attack("bigint-result", "return 10n", "js_error", "BigInt"),
    Attack("stringify-hijack", "JSON.stringify = () => 'not json'; return 1", "js_error", ""),
]

ATTACKS = [*FILE_READS, *NETWORK, *HOST_OBJECTS, *CTX_WRITES, *RESOURCES, *ERRORS]
assert len({a.id for a in ATTACKS}) == len(ATTACKS)
CTX = {"a": 1, "o": {"b": 1}, "list": []}


@pytest.fixture(scope="module")
def battery() -> Iterator[dict[str, tuple[Any, SandboxError | None, float]]]:
    """Every attack run once (concurrently): ``{id: (value, error, seconds)}``."""

    def one(attack: Attack) -> tuple[Any, SandboxError | None, float]:
        started = time.monotonic()
        try:
            value = run_js(attack.code, CTX if attack.context is None else attack.context)
        except SandboxError as exc:
            return None, exc, time.monotonic() - started
        return value, None, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip([a.id for a in ATTACKS], pool.map(one, ATTACKS), strict=True))
    yield results


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_attack_fails_with_a_clear_error(battery: dict[str, Any], attack: Attack) -> None:
    value, error, seconds = battery[attack.id]
    assert error is not None, f"{attack.id}: the script succeeded with {value!r:.200}"
    assert error.code == attack.error, (attack.id, error.code, error.message)
    assert isinstance(error.message, str) and error.message.strip(), attack.id
    assert attack.says in error.message, (attack.id, error.message)
    assert len(error.message) <= 2000 and "Traceback" not in error.message, error.message
    assert PASSWD_MARKER not in error.message
    assert seconds < Limits().timeout_s, (attack.id, seconds)  # failed on its own, not at the deadline


def test_battery_leaves_no_runner_behind(battery: dict[str, Any]) -> None:
    assert _wait_gone(_leftover_runners) == []


# --- nothing reaches the host's files, network or environment ------------------------------------------
def test_dynamic_import_of_fs_yields_no_module() -> None:
    """``import()`` only returns a promise, which the sandbox refuses as a result: no module, no file data."""
    for code in (
        "return import('fs')",
        "return import('/etc/passwd')",
        "return (async () => import('fs'))()",
    ):
        with pytest.raises(SandboxError) as caught:
            run_js(code, {})
        assert caught.value.code == "js_error" and "Promise" in caught.value.message, code
        assert PASSWD_MARKER not in caught.value.message


HOST_GLOBALS = (
    "require process module exports global Buffer fetch XMLHttpRequest WebSocket EventSource Worker"
    " importScripts navigator Deno Bun load read readbuffer readline print write quit os std system"
    " __dirname __filename"
)


def test_no_host_capabilities_among_the_globals() -> None:
    names = set(run_js("return Object.getOwnPropertyNames(globalThis)", {}))
    assert {"Object", "JSON", "Math", "Array"} <= names
    assert names & set(HOST_GLOBALS.split()) == set()


def test_console_log_cannot_forge_the_reply() -> None:
    code = 'console.log(\'{"ok": true, "value": "forged"}\'); console.error("x"); return "real"'
    assert run_js(code, {}) == "real"


@pytest.fixture
def jail() -> None:
    """The runner's command starts with bubblewrap. Outside CI a machine without a usable bubblewrap
    skips the jail's tests; under ``CI=true`` (where .ci/run installs it) that is a failure, because a
    broken bind list silently runs user code without the jail and looks exactly like "not installed"."""
    if javascript._command()[0].endswith("bwrap"):
        return
    reason = "bubblewrap is not installed" if not shutil.which("bwrap") else "bubblewrap's probe run failed"
    missing_service(f"{reason}: user code would run without the jail")


def _descendant_runner(root_pid: int) -> int | None:
    """The innermost live process running js_runner.py below ``root_pid`` (the one that runs V8)."""
    table = _proc_table()
    found = None
    for pid, (state, _, cmd) in table.items():
        if "js_runner.py" not in cmd or state in "ZX":
            continue
        chain, parent = [], pid
        while parent in table and parent not in (0, 1, root_pid):
            chain.append(parent)
            parent = table[parent][1]
        if parent == root_pid and (found is None or len(chain) > found[1]):
            found = (pid, len(chain))
    return found[0] if found else None


def test_the_jail_is_in_force_for_user_code(jail: None, tmp_path: Any) -> None:
    """Look at a running script's process from outside: its root shows none of the host's files, and it
    has its own mount, network and PID namespaces."""
    marker = tmp_path / "host-only.txt"
    marker.write_text("host")
    host_paths = ["/etc/passwd", "/etc/hostname", "/var/lib", str(marker)]
    host_paths.append(str(javascript.RUNNER.parents[3] / "jetadmin" / "settings.py"))
    assert all(os.path.exists(path) for path in host_paths)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_js, "while (true) {}", {}, Limits(timeout_s=8))
        deadline = time.monotonic() + 6
        pid = None
        while pid is None and time.monotonic() < deadline:
            time.sleep(0.05)
            pid = _descendant_runner(os.getpid())
        assert pid is not None, "no runner process showed up"
        root = f"/proc/{pid}/root"
        seen = {path: os.path.exists(root + path) for path in host_paths}
        namespaces = {
            ns: os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
            for ns in ("mnt", "net", "pid", "ipc", "uts")
        }
        own_python = os.path.exists(root + sys.executable)
        os.kill(pid, signal.SIGKILL)  # done looking: end the endless script now
        with pytest.raises(SandboxError):
            running.result(timeout=20)
    assert own_python, "the runner's own Python is not in its root: the probe looked at the wrong process"
    assert seen == dict.fromkeys(seen, False), f"host paths visible inside the jail: {seen}"
    assert namespaces == dict.fromkeys(namespaces, True), f"namespaces shared with the host: {namespaces}"


def test_bubblewrap_hides_host_files_network_and_environment(jail: None) -> None:
    """The outer layer, checked with Python inside the runner's own bubblewrap jail."""
    probe = """
import json, os, socket, sys
out = {"files": {}, "net": {}}
for path in ("/etc/passwd", "/etc/shadow", sys.argv[1], os.path.expanduser("~root/.bash_history")):
    try:
        open(path, "rb").read(1)
        out["files"][path] = "read"
    except OSError as exc:
        out["files"][path] = type(exc).__name__
for host, port in (("127.0.0.1", 5432), ("127.0.0.1", 6379), ("1.1.1.1", 80)):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((host, port))
        out["net"][f"{host}:{port}"] = "connected"
    except OSError as exc:
        out["net"][f"{host}:{port}"] = type(exc).__name__
    finally:
        s.close()
try:
    open(os.path.join(os.path.dirname(sys.argv[2]), "pwned"), "w")
    out["write"] = "wrote"
except OSError as exc:
    out["write"] = type(exc).__name__
out["env"] = sorted(os.environ)
out["init_env"] = open("/proc/1/environ", "rb").read().decode(errors="replace")
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps(out))
"""
    settings_file = str(javascript.RUNNER.parents[3] / "jetadmin" / "settings.py")
    proc = subprocess.run(
        [
            *javascript._bwrap_prefix(),
            sys.executable,
            "-I",
            "-c",
            probe,
            settings_file,
            str(javascript.RUNNER),
        ],
        capture_output=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    seen = json.loads(proc.stdout)
    assert all(result != "read" for result in seen["files"].values()), seen["files"]
    assert seen["files"]["/etc/passwd"] == "FileNotFoundError"
    assert (
        seen["files"][settings_file] == "FileNotFoundError"
    )  # the project's code and config are not mounted
    assert all(result != "connected" for result in seen["net"].values()), seen["net"]
    assert seen["write"] != "wrote"
    assert not (set(seen["env"]) - {"PATH", "LANG", "LC_CTYPE", "PWD"}), seen["env"]
    for secret in ("DATABASE_URL", "REDIS_URL", "SECRET", "PASSWORD", "TOKEN"):
        assert secret not in seen["init_env"]
    assert len(seen["pids"]) <= 3, seen["pids"]  # own PID namespace: no host processes to look at


# --- the frozen context and prototypes -------------------------------------------------------------------
def test_pollution_does_not_leak_into_the_next_run() -> None:
    pollute = """
      Object.prototype.polluted = 1; Array.prototype.evil = 2; ctx.__proto__.viaCtx = 3;
      globalThis.marker = 4; Object.freeze = (o) => o; Object.isFrozen = () => true;
      String.prototype.toString = () => 'hijacked'; Math.random = () => 0.5;
      return [({}).polluted, [].evil, ({}).viaCtx, marker]
    """
    assert run_js(pollute, {"a": 1}) == [1, 2, 3, 4]
    check = """
      "use strict";
      let refused = false;
      try { ctx.a = 2; } catch (e) { refused = e instanceof TypeError; }
      return {
        clean: ({}).polluted === undefined && [].evil === undefined && ({}).viaCtx === undefined
          && !("polluted" in Object.prototype) && !("viaCtx" in ctx),
        marker: typeof globalThis.marker, frozen: Object.isFrozen(ctx) && Object.isFrozen(ctx.o), refused,
        a: ctx.a, toString: 'abc'.toString(), random: Math.random() !== 0.5 || Math.random() !== 0.5,
      };
    """
    assert run_js(check, {"a": 1, "o": {}}) == {
        "clean": True,
        "marker": "undefined",
        "frozen": True,
        "refused": True,
        "a": 1,
        "toString": "abc",
        "random": True,
    }


def test_proto_keys_in_the_context_do_not_pollute() -> None:
    context = {"__proto__": {"polluted": True}, "o": {"constructor": {"prototype": {"polluted": True}}}}
    code = (
        "return [({}).polluted, ctx.polluted, Object.getPrototypeOf(ctx) === Object.prototype, ctx.__proto__]"
    )
    assert run_js(code, context) == [None, None, True, {"polluted": True}]


def test_context_strings_cannot_break_out_of_the_wrapper() -> None:
    nasty = '"); throw 1; ("\' \\" </script> \u2028\u2029 %s %d %% ${x} `'
    assert run_js("return [ctx.s, '100%s %d']", {"s": nasty}) == [nasty, "100%s %d"]


# --- the positive path -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "context", "expected"),
    [
        ("return ctx.a + 1", {"a": 1}, 2),
        (
            "return {n: ctx.a, list: [1, 'two', null, true], nested: {deep: [{x: 1.5}]}}",
            {"a": 3},
            {"n": 3, "list": [1, "two", None, True], "nested": {"deep": [{"x": 1.5}]}},
        ),
        (
            "return [ctx.rows.length, ...ctx.rows.map((r) => r.v * 2)]",
            {"rows": [{"v": 1}, {"v": 2}]},
            [2, 2, 4],
        ),
        ("return null", {}, None),
        ("return undefined", {}, None),
        ("let x = 1;", {}, None),
        ("return 'é✓ \\u0000'", {}, "é✓ \x00"),
        ("return [NaN, Infinity, -0]", {}, [None, None, 0]),
        ("return new Date(0)", {}, "1970-01-01T00:00:00.000Z"),
        ("return ctx", {"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
    ],
    ids=[
        "increment",
        "object",
        "array",
        "null",
        "undefined",
        "no-return",
        "unicode",
        "non-finite",
        "date",
        "echo-ctx",
    ],
)
def test_returns_json_values(code: str, context: Any, expected: Any) -> None:
    assert run_js(code, context) == expected


def test_positive_path_with_the_real_command() -> None:
    """Successful runs do not hit the teardown hang: the unshimmed runner, as production runs it."""
    for code, expected in (
        ("return ctx.a + 1", 2),
        ("return [ctx, null, undefined]", [{"a": 1}, None, None]),
    ):
        started = time.monotonic()
        assert run_js(code, {"a": 1}) == expected
        # A host that waited for the runner to exit would sit out the time limit and the grace period.
        assert time.monotonic() - started < Limits().timeout_s


def test_output_cap_follows_the_limit() -> None:
    assert run_js("return 'x'.repeat(900)", {}, Limits(max_output=1000)) == "x" * 900
    with pytest.raises(SandboxError) as caught:
        run_js("return 'x'.repeat(2000)", {}, Limits(max_output=1000))
    assert caught.value.code == "output_too_large"
    assert "larger than 1000 bytes" in caught.value.message


# --- time limits -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "while (true) {}",
        "for (;;) { Math.random(); }",
        "return /(a+)+$/.test('a'.repeat(40) + '!')",
        "const end = Date.now() + 600000; while (Date.now() < end) {}",
        "return {toJSON() { while (true) {} }}",
        "const sab = new SharedArrayBuffer(16); Atomics.wait(new Int32Array(sab), 0, 0, 1e9); return 1",
    ],
    ids=["while-true", "for-ever", "regex-backtracking", "busy-wait", "endless-toJSON", "atomics-wait"],
)
def test_endless_script_times_out(code: str) -> None:
    limit = 0.5
    started = time.monotonic()
    with pytest.raises(SandboxError) as caught:
        run_js(code, {}, Limits(timeout_s=limit))
    elapsed = time.monotonic() - started
    assert caught.value.code == "timeout"
    assert "time limit" in caught.value.message
    assert limit <= elapsed < limit + 3, elapsed
    assert _wait_gone(_leftover_runners) == []


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Replace the runner by a Python script; returns the marker its (and its children's) argv carry."""

    def install(script: str) -> str:
        marker = f"jetadmin-sandbox-test-{uuid.uuid4().hex}"
        monkeypatch.setattr(javascript, "_command", lambda: [sys.executable, "-c", script, marker])
        return marker

    return install


def test_host_kills_a_hung_runner_and_its_process_group(fake_runner: Callable[[str], str]) -> None:
    """A runner that V8 cannot stop (hung native code): the host kills the whole group at the deadline."""
    marker = fake_runner(
        "import subprocess, sys, time\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1] + '-grandchild']\n"
        "subprocess.Popen(sleeper)\n"
        "sys.stdin.buffer.read()\n"
        "time.sleep(60)\n"
    )
    limit = 0.3
    started = time.monotonic()
    with pytest.raises(SandboxError) as caught:
        run_js("return 1", {}, Limits(timeout_s=limit))
    elapsed = time.monotonic() - started
    assert caught.value.code == "timeout"
    assert caught.value.message == "The script ran past its time limit of 0.3 s."
    assert _wait_gone(lambda: _live(marker)) == []
    # The baseline, in this test: the same fake runner answering at once (process start and teardown).
    fake_runner('import sys\nsys.stdin.buffer.read()\nprint(\'{"ok": true, "value": 1}\')\n')
    quick = time.monotonic()
    assert run_js("return 1", {}, Limits(timeout_s=limit)) == 1
    baseline = time.monotonic() - quick
    # Killed at its deadline (limit + grace), not when the hung runner's 60 s sleep ends.
    assert limit + GRACE_S <= elapsed < limit + GRACE_S + 1.0 + 3 * baseline, (elapsed, baseline)


def test_host_caps_an_endless_stream(fake_runner: Callable[[str], str]) -> None:
    marker = fake_runner("import sys\nwhile True:\n    sys.stdout.buffer.write(b'x' * 65536)\n")
    started = time.monotonic()
    with pytest.raises(SandboxError) as caught:
        run_js("return 1", {}, Limits(timeout_s=5, max_output=1024 * 1024))
    assert caught.value.code == "output_too_large"
    assert time.monotonic() - started < 5  # ended by the cap, not by the time limit
    assert _wait_gone(lambda: _live(marker)) == []


@pytest.mark.parametrize(
    "script",
    [
        "import os\nos._exit(3)\n",
        "print('not json')\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    ],
    ids=["silent-exit", "garbage", "killed"],
)
def test_runner_crash_is_sandbox_crashed(fake_runner: Callable[[str], str], script: str) -> None:
    fake_runner(script)
    with pytest.raises(SandboxError) as caught:
        run_js("return 1", {}, Limits(timeout_s=2))
    assert caught.value.code == "sandbox_crashed"
    assert caught.value.message == "The script's sandbox exited without a result."


# --- app bugs, pinned --------------------------------------------------------------------------------------
def test_bug_runner_hangs_in_teardown_after_a_js_error() -> None:
    code = "const junk = []; for (let i = 0; i < 1e5; i++) junk.push({i}); null.x"

    def one(_: int) -> str:
        try:
            run_js(code, {}, Limits(timeout_s=0.5))
        except SandboxError as exc:
            return exc.code
        return "ok"

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(one, range(12)))
    assert codes == ["js_error"] * 12


@pytest.mark.parametrize(
    "code",
    [
        "const keep = []; for (let i = 0; i < 8; i++) keep.push(new Uint8Array(32 * 1024 * 1024).fill(1));"
        " return keep.length",
        "const m = new WebAssembly.Memory({initial: 1, maximum: 8192}); m.grow(4095);"
        " new Uint8Array(m.buffer).fill(1); return m.buffer.byteLength",
    ],
    ids=["typed-arrays-256MB", "wasm-memory-256MB"],
)
def test_bug_external_memory_escapes_the_memory_limit(code: str) -> None:
    with pytest.raises(SandboxError) as caught:
        run_js(code, {})
    assert caught.value.code in ("memory_limit", "js_error")


@pytest.mark.parametrize("code", ["return function () {}", "return Symbol('x')", "return () => 1"])
def test_bug_unserialisable_result_crashes_the_sandbox(code: str) -> None:
    try:
        assert run_js(code, {}) is None
    except SandboxError as exc:
        assert exc.code == "js_error", (exc.code, exc.message)


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("return (async () => ctx.a + 1)()", 2),
        ("return Promise.resolve(2)", 2),
        ("return import('fs')", None),
    ],
    ids=["async-function", "promise", "dynamic-import"],
)
def test_bug_promise_result_is_silently_an_empty_object(code: str, value: Any) -> None:
    try:
        result = run_js(code, {"a": 1})
    except SandboxError as exc:
        assert exc.code == "js_error" and exc.message.strip()
    else:
        assert value is not None and result == value


def test_bug_error_line_numbers_are_the_wrappers() -> None:
    with pytest.raises(SandboxError) as caught:
        run_js("let a = 1;\nnull.x", {})
    assert ":2:" in caught.value.message or "line 2" in caught.value.message, caught.value.message


# --- through the engine ---------------------------------------------------------------------------
def js_graph(code: str, js_inputs: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "js", "type": "javascript", "inputs": {"code": code, **(js_inputs or {})}, **envelope},
            {"id": "end", "type": "end", "inputs": {"output": "{{js}}"}},
        ],
        "edges": [{"source": "start", "target": "js"}, {"source": "js", "target": "end"}],
    }


PLAIN = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "end", "type": "end", "inputs": {"output": "{{input}}"}},
    ],
    "edges": [{"source": "start", "target": "end"}],
}


def _assert_js_failed(instance: Any, code: str, says: str) -> None:
    assert instance.status == "failed", (instance.status, instance.output)
    js = services.node_summary(instance)["js"]
    assert js["status"] == "failed", js
    assert js["error"]["code"] == code, js["error"]
    assert js["error"]["message"].startswith("JavaScript "), js["error"]
    assert says in js["error"]["message"], js["error"]
    assert PASSWD_MARKER not in js["error"]["message"]
    assert instance.error["code"] == code and instance.error["node_id"] == "js", instance.error


@pytest.mark.django_db(transaction=True)
def test_engine_endless_script_fails_its_run_while_others_run_on(
    run_graph: Callable[..., Any], owner_tenant: Any
):
    """Unshimmed: the real command, as the worker runs it in production."""
    user, tenant = owner_tenant
    assert run_graph(js_graph("return ctx.input.a + 1"), {"a": 1}).output == 2  # the worker is warm
    quick = time.monotonic()  # the baseline, in this test: a script that ends at once, through the engine
    assert run_graph(js_graph("return ctx.input.a + 1"), {"a": 1}).output == 2
    baseline = time.monotonic() - quick
    started = time.monotonic()
    hung = services.workflow_test(
        actor=tenancy.Actor(user=user), tenant=tenant, graph=js_graph("while (true) {}", {"timeout_s": 1})
    )
    other = run_graph(PLAIN, {"n": 1})  # runs (and ends) while the script spins on another worker thread
    assert other.status == "succeeded" and other.output == {"n": 1}

    hung, timed_out = services.instance_wait(instance=hung, timeout_s=15)
    assert not timed_out
    elapsed = time.monotonic() - started
    _assert_js_failed(hung, "timeout", "time limit")
    # Stopped by the node's 1 s limit (V8's own timeout, the host's kill at 1 s + grace at the latest),
    # not by the 5 s default: the margin over that is the baseline run's own time, three times over.
    assert elapsed < 1 + GRACE_S + 3 * baseline, (elapsed, baseline)
    assert other.ended_at < hung.ended_at

    after = run_graph(js_graph("return ctx.input.a + 1"), {"a": 1})  # the worker survived
    assert after.status == "succeeded", after.error
    assert after.output == 2
    assert _wait_gone(_leftover_runners) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("graph", "code", "says"),
    [
        (js_graph("return ("), "js_error", "SyntaxError"),
        (
            js_graph("return require('fs').readFileSync('/etc/passwd', 'utf8')"),
            "js_error",
            "require is not defined",
        ),
        (
            js_graph("return this.constructor.constructor('return process')()"),
            "js_error",
            "Cannot read properties",
        ),
        (js_graph("ctx.input.a = 2; return ctx.input.a"), "js_error", "read only property 'a'"),
        (
            js_graph("const a = []; while (true) { a.push(new Array(1e6).fill(1)); }"),
            "memory_limit",
            "memory",
        ),
        (js_graph("return 'x'.repeat(10 * 1024 * 1024)"), "output_too_large", "larger than"),
        (
            js_graph("while (true) {}", timeout_s=1),
            "timeout",
            "time limit",
        ),  # the node's own timeout caps V8's
    ],
    ids=[
        "syntax-error",
        "require-fs",
        "constructor-escape",
        "frozen-ctx",
        "memory-bomb",
        "huge-output",
        "node-timeout",
    ],
)
def test_engine_failing_script_fails_only_its_own_run(
    run_graph: Callable[..., Any],
    owner_tenant: Any,
    graph: dict[str, Any],
    code: str,
    says: str,
) -> None:
    user, tenant = owner_tenant
    started = time.monotonic()
    failing = services.workflow_test(
        actor=tenancy.Actor(user=user), tenant=tenant, graph=graph, input={"a": 1}
    )
    concurrent = run_graph(PLAIN, {"n": 2})
    failing, timed_out = services.instance_wait(instance=failing, timeout_s=15)
    assert not timed_out
    _assert_js_failed(failing, code, says)
    assert time.monotonic() - started < 5
    assert concurrent.status == "succeeded" and concurrent.output == {"n": 2}
    after = run_graph(js_graph("return [ctx.input.a, ctx.start]"), {"a": 1})
    assert after.status == "succeeded", after.error
    assert after.output == [1, {"a": 1}]


# --- last: nothing left behind -----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # the embedded worker's periodic tasks may still touch the database
def test_zz_no_runner_process_left_behind() -> None:
    assert _wait_gone(_leftover_runners) == []
