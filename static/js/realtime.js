/* jetadmin realtime client: one websocket per page (/ws/), authenticated by the session cookie.
 *
 *   const rt = JetRealtime.connect();                 // or connect({url, token}) outside a page
 *   rt.joinRun(instanceId, (event, data) => { ... }); // every event of the run, once, in seq order
 *   rt.onState((state) => { ... });                   // "connecting" | "live" | "reconnecting"
 *   rt.connectWidget(widgetId, {mode: "execute", inputParams, dashboardId}, (event, data) => { ... });
 *   rt.sendWidgetInput(widgetId, instanceId, data); rt.refreshWidget(widgetId); rt.disconnectWidget(widgetId);
 *
 * It keeps, per joined run, the last seq it handed to the page. A message whose seq is not the next
 * one is held back: a duplicate is dropped; a hole (a message the server's channel layer lost) makes it
 * rejoin with after_seq, and the server replays from its journal. It pings every few seconds: the
 * pong's last_seq reveals a lost *last* event the same way. On a dropped connection it reconnects with
 * growing, jittered delays and rejoins every run after the last seq it has, and connects its widgets
 * again (an "execute" widget re-attaches to the run in flight, which the server shares). Each message is also
 * dispatched on `document` as a "jetadmin:<event>" CustomEvent. Plain JavaScript, no build step.
 */
(function () {
  "use strict";

  const PING_MS = 5000;
  const MAX_BACKOFF_MS = 10000;

  function connect(options) {
    const opts = options || {};
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = opts.url || `${scheme}//${window.location.host}/ws/`;
    const runs = new Map(); // instance id -> {last, handler}
    const widgets = new Map(); // widget id -> {mode, instanceId, inputParams, handler, lastData}
    const stateListeners = [];
    let socket = null;
    let attempt = 0;
    let pinger = null;
    let closed = false;

    function setState(state) {
      stateListeners.forEach((listener) => listener(state));
    }

    function send(event, data) {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ event, data: data || {} }));
      }
    }

    function join(instanceId) {
      const run = runs.get(instanceId);
      run.joining = true; // until workflow_run_joined: holes seen meanwhile need no second join
      send("workflow_run_join", { instance_id: instanceId, after_seq: run.last });
    }

    function connectWidget(widgetId) {
      const w = widgets.get(widgetId);
      const data = { widget_id: widgetId, mode: w.mode };
      if (w.instanceId && w.mode !== "execute") data.instance_id = w.instanceId;
      if (w.inputParams) data.input_params = w.inputParams;
      if (w.dashboardId) data.dashboard_id = w.dashboardId; // shown on a dashboard: its filters may be set
      send("widget_workflow_connect", data);
    }

    function deliver(event, data) {
      document.dispatchEvent(new CustomEvent(`jetadmin:${event}`, { detail: data }));
      const run = data && !event.startsWith("widget_") && runs.get(data.instance_id);
      if (run) {
        run.handler(event, data);
      }
      const widget = data && event.startsWith("widget_") && widgets.get(data.widget_id);
      if (widget) {
        if (data.instance_id) widget.instanceId = data.instance_id;
        // An error keeps the last good data: the page shows it with the error, never a blank.
        if (data.processed_data !== undefined && event !== "widget_workflow_error") widget.lastData = data.processed_data;
        widget.handler(event, data, widget.lastData);
      }
    }

    function onMessage(raw) {
      let message;
      try {
        message = JSON.parse(raw.data);
      } catch (err) {
        return;
      }
      const { event, data } = message;
      if (event === "pong") {
        Object.entries((data && data.last_seq) || {}).forEach(([iid, last]) => {
          const run = runs.get(iid);
          if (run && last > run.last) join(iid); // the server has more than we got
        });
        return;
      }
      if (event === "workflow_run_joined" && runs.has(data.instance_id)) {
        runs.get(data.instance_id).joining = false;
      }
      if (data && typeof data.seq === "number" && runs.has(data.instance_id)) {
        const run = runs.get(data.instance_id);
        if (data.seq <= run.last) return; // already handed over
        if (data.seq > run.last + 1) {
          if (!run.joining) join(data.instance_id); // a hole: the replay brings it, in order
          return;
        }
        run.last = data.seq;
      }
      deliver(event, data);
    }

    function open() {
      setState(attempt === 0 ? "connecting" : "reconnecting");
      socket = new WebSocket(url);
      socket.addEventListener("open", () => {
        attempt = 0;
        if (opts.token) send("authenticate", { token: opts.token });
        runs.forEach((_, iid) => join(iid));
        widgets.forEach((_, wid) => connectWidget(wid));
        setState("live");
        clearInterval(pinger);
        pinger = setInterval(() => send("ping"), PING_MS);
      });
      socket.addEventListener("message", onMessage);
      socket.addEventListener("close", () => {
        clearInterval(pinger);
        if (closed) return;
        attempt += 1;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
        setState("reconnecting");
        setTimeout(open, delay);
      });
    }

    open();
    return {
      joinRun(instanceId, handler) {
        runs.set(instanceId, { last: 0, handler, joining: false });
        join(instanceId);
      },
      leaveRun(instanceId) {
        runs.delete(instanceId);
        send("workflow_run_leave", { instance_id: instanceId });
      },
      connectWidget(widgetId, options, handler) {
        const o = options || {};
        widgets.set(widgetId, {
          mode: o.mode || "execute",
          instanceId: o.instanceId || null,
          inputParams: o.inputParams || null,
          dashboardId: o.dashboardId || null,
          handler,
          lastData: undefined,
        });
        connectWidget(widgetId);
      },
      disconnectWidget(widgetId) {
        widgets.delete(widgetId);
        send("widget_workflow_disconnect", { widget_id: widgetId });
      },
      refreshWidget(widgetId, inputParams) {
        const w = widgets.get(widgetId);
        if (w && inputParams) w.inputParams = inputParams;
        send("widget_refresh", inputParams ? { widget_id: widgetId, input_params: inputParams } : { widget_id: widgetId });
      },
      sendWidgetInput(widgetId, instanceId, data) {
        send("widget_send_input", { widget_id: widgetId, instance_id: instanceId, data });
      },
      onState(listener) {
        stateListeners.push(listener);
      },
      send,
      close() {
        closed = true;
        clearInterval(pinger);
        if (socket) socket.close();
      },
    };
  }

  window.JetRealtime = { connect };
})();
