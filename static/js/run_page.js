/* The run page: node statuses and the journal, updated live (static/js/realtime.js). */
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
  rt.joinRun(runId, (event, data) => {
    if (event === "workflow_run_joined" || event === "workflow_status_update") {
      setStatus(runStatus, data.status);
      if (event === "workflow_run_joined") return;
    }
    if (event === "workflow_node_update" && !data.iteration) {
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
