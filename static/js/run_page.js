/* The run inspector: graph nodes (data-status), node statuses and the journal, updated live
   (static/js/realtime.js). */
(function () {
  "use strict";

  const runId = JSON.parse(document.getElementById("run-id").textContent);
  const runStatus = document.querySelector("[data-testid=run-status]");
  const live = document.querySelector("[data-testid=live]");
  const journal = document.querySelector("[data-testid=journal]");
  const count = document.querySelector("[data-testid=event-count]");
  let events = 0;

  function setStatus(el, status) {
    el.textContent = status; // user data is text, never markup
    el.className = `status status-${status}`;
  }

  function note(text) {
    const item = document.createElement("li");
    item.textContent = text;
    journal.prepend(item);
    while (journal.children.length > 200) journal.lastChild.remove();
    events += 1;
    count.textContent = String(events);
  }

  const rt = JetRealtime.connect();
  rt.onState((state) => {
    live.dataset.state = state;
    live.textContent = state;
    live.title = state;
  });
  const TERMINAL = ["succeeded", "failed", "canceled"];
  let timer = null;
  function refresh() {
    // Parts of the page that are not streamed (actions, approval forms, timeline, node details) are
    // redrawn from the server when the run starts waiting or ends: fetched, not reloaded.
    clearTimeout(timer);
    timer = setTimeout(() => {
      fetch(window.location.pathname, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
        .then((html) => {
          const fresh = new DOMParser().parseFromString(html, "text/html"); // our own server-rendered page
          document.querySelectorAll("[data-refresh]").forEach((el) => {
            const next = fresh.querySelector(`[data-refresh="${el.dataset.refresh}"]`);
            if (next) el.replaceWith(document.importNode(next, true));
          });
        })
        .catch(() => {}); // the live parts are right already; the rest shows on the next visit
    }, 250);
  }
  let status = document.getElementById("run-body").dataset.status;
  rt.joinRun(runId, (event, data) => {
    if (event === "workflow_run_joined" || event === "workflow_status_update") {
      setStatus(runStatus, data.status);
      if (data.status !== status && (TERMINAL.includes(data.status) || data.status === "waiting")) refresh();
      status = data.status;
      if (event === "workflow_run_joined") return;
    }
    if (event === "workflow_node_update" && !data.iteration) {
      const box = document.querySelector(`.gnode[data-node-id="${CSS.escape(data.node_id)}"]`);
      if (box) {
        box.dataset.status = data.status;
        box.className = `gnode status-${data.status}`;
        const label = box.querySelector("[data-role=status]");
        if (label) label.textContent = data.status;
      }
      const row = document.querySelector(`tr[data-node="${CSS.escape(data.node_id)}"]`);
      if (row) {
        setStatus(row.querySelector("[data-role=status]"), data.status);
        row.querySelector("[data-role=attempt]").textContent = String(data.attempt);
      }
    }
    const what = data.node_id ? `${data.node_id} ${data.status || data.type}` : `run ${data.status || data.type}`;
    note(`#${data.seq} ${what}`);
  });
})();
