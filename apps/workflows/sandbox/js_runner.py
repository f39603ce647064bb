"""Child process that runs one piece of user JavaScript in V8 (mini-racer) and exits.

Protocol: one JSON object on stdin ``{code, context, timeout_ms, max_memory}``; one JSON object on
stdout ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": {"code", "message"}}``. The V8
isolate has no file system, network, ``require`` or ``process``; the host kills this process at its
wall-clock deadline, because mini-racer can hang its process after a timeout.
"""

import json
import sys

WRAPPER = """
(function () {
  "use strict";
  const freeze = (o) => { if (o && typeof o === "object" && !Object.isFrozen(o)) {
      Object.freeze(o); Object.getOwnPropertyNames(o).forEach((k) => freeze(o[k])); } return o; };
  const ctx = freeze(JSON.parse(%s));
  const __result = (function (ctx) { %s
  })(ctx);
  return JSON.stringify(__result === undefined ? null : __result);
})()
"""


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    try:
        from py_mini_racer import MiniRacer
        from py_mini_racer import _exc as mr_exc
    except ImportError as exc:  # pragma: no cover - an install problem, reported to the user
        print(json.dumps({"ok": False, "error": {"code": "sandbox_unavailable", "message": str(exc)}}))
        return
    racer = MiniRacer()
    racer.set_hard_memory_limit(int(request["max_memory"]))
    source = WRAPPER % (json.dumps(json.dumps(request["context"])), request["code"])
    try:
        raw = racer.eval(source, timeout=int(request["timeout_ms"]))
        value = json.loads(raw) if isinstance(raw, str) else raw
        out = {"ok": True, "value": value}
    except mr_exc.JSTimeoutException:
        out = {"ok": False, "error": {"code": "timeout", "message": "The script ran past its time limit."}}
    except Exception as exc:
        if racer.was_hard_memory_limit_reached():
            out = {
                "ok": False,
                "error": {"code": "memory_limit", "message": "The script used too much memory."},
            }
        else:
            message = str(exc).strip().splitlines()
            text = next((line for line in message if "Error" in line), message[0] if message else repr(exc))
            out = {"ok": False, "error": {"code": "js_error", "message": text[:2000]}}
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
