"""Child process that runs one piece of user JavaScript in V8 (mini-racer) and exits.

Protocol: one JSON object on stdin ``{code, context, timeout_ms, max_memory}``; one JSON line on
stdout ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": {"code", "message"}}``. The V8
isolate has no file system, network, ``require`` or ``process``. The process caps its own data
segment (typed arrays and wasm memory live outside V8's heap limit), and leaves with ``os._exit``
right after answering: mini-racer can hang in its teardown, and the host kills it at its deadline.
"""

import json
import os
import re
import resource
import sys

PREFIX = """(function () {
  "use strict";
  const freeze = (o) => { if (o && typeof o === "object" && !Object.isFrozen(o)) {
      Object.freeze(o); Object.getOwnPropertyNames(o).forEach((k) => freeze(o[k])); } return o; };
  const ctx = freeze(JSON.parse(%s));
  const __result = (function (ctx) {
"""
SUFFIX = """
  })(ctx);
  if (__result && typeof __result.then === "function") {
    throw new TypeError("The script returned a Promise; async code is not supported, return a value.");
  }
  const __text = JSON.stringify(__result === undefined ? null : __result);
  return __text === undefined ? "null" : __text;
})()
"""
LINE_OFFSET = PREFIX.count("\n")
LINE = re.compile(r"<anonymous>:(\d+)(?::(\d+))?")


def _user_lines(message: str) -> str:
    def shift(m: "re.Match[str]") -> str:
        line = int(m.group(1)) - LINE_OFFSET
        return f"line {line}" if line >= 1 else "line 1"

    return LINE.sub(shift, message)


def _data_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def answer(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()
    os._exit(0)


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    try:
        from py_mini_racer import MiniRacer
        from py_mini_racer import _exc as mr_exc
    except ImportError as exc:  # pragma: no cover - an install problem, reported to the user
        answer({"ok": False, "error": {"code": "sandbox_unavailable", "message": str(exc)}})
        return
    try:
        racer = MiniRacer()
    except Exception as exc:
        answer({"ok": False, "error": {"code": "sandbox_unavailable", "message": f"V8 did not start: {exc}"}})
        return
    racer.set_hard_memory_limit(int(request["max_memory"]))
    extra = int(request.get("max_process_memory") or 0)
    if extra:  # V8 has reserved its address ranges by now; from here on, growth beyond ``extra`` fails
        cap = _data_size() + extra
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    source = PREFIX % json.dumps(json.dumps(request["context"])) + request["code"] + SUFFIX
    try:
        raw = racer.eval(source, timeout=int(request["timeout_ms"]))
        out = {"ok": True, "value": json.loads(raw) if isinstance(raw, str) else None}
    except mr_exc.JSTimeoutException:
        out = {"ok": False, "error": {"code": "timeout", "message": "The script ran past its time limit."}}
    except MemoryError:
        out = {"ok": False, "error": {"code": "memory_limit", "message": "The script used too much memory."}}
    except Exception as exc:
        if racer.was_hard_memory_limit_reached():
            out = {
                "ok": False,
                "error": {"code": "memory_limit", "message": "The script used too much memory."},
            }
        else:
            lines = str(exc).strip().splitlines()
            text = next((line for line in lines if "Error" in line), lines[0] if lines else repr(exc))
            out = {"ok": False, "error": {"code": "js_error", "message": _user_lines(text)[:2000]}}
    answer(out)


if __name__ == "__main__":
    main()
