/* A dashboard: every widget's last data is drawn at once (Chart.js for charts; tables and numbers
   are server-rendered and redrawn here), then each widget follows its workflow over /ws/
   (static/js/realtime.js): `execute` reuses a run in flight or finished within the refresh interval,
   so many viewers share one run; the Refresh button forces new runs. Text is only ever set as text. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const live = document.querySelector("[data-testid=live]");
  const tiles = Array.from(document.querySelectorAll("[data-widget-id]"));
  const charts = new Map(); // widget id -> Chart
  const state = new Map(); // widget id -> {data, sortField, sortDesc, page}
  const CHART_TYPES = ["bar", "line", "pie", "radar", "scatter", "bubble"];

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function cell(value) {
    if (value === null || value === undefined) return "—";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }
  function body(tile) {
    return tile.querySelector("[data-role=body]");
  }

  // --- drawing ---------------------------------------------------------------------------------
  function drawChart(tile, data) {
    const wid = tile.dataset.widgetId;
    let canvas = tile.querySelector("canvas[data-role=chart]");
    if (!canvas) {
      body(tile).textContent = "";
      canvas = el("canvas");
      canvas.dataset.role = "chart";
      canvas.setAttribute("role", "img");
      body(tile).appendChild(canvas);
    }
    const chartData = { labels: data.labels || [], datasets: data.datasets || [] };
    const existing = charts.get(wid);
    if (existing) {
      existing.data = chartData;
      existing.update();
      return;
    }
    const options = Object.assign(
      {
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 250 },
        onClick: (evt, elements, chart) => {
          if (elements.length) crossFilter(wid, chart.data.labels[elements[0].index]);
        },
      },
      data.options || {},
    );
    charts.set(wid, new window.Chart(canvas, { type: tile.dataset.widgetType, data: chartData, options }));
  }

  function drawTable(tile, data) {
    const wid = tile.dataset.widgetId;
    const s = state.get(wid) || { page: 0, sortField: null, sortDesc: false };
    state.set(wid, Object.assign(s, { data }));
    const columns = data.columns || [];
    let rows = (data.rows || []).slice();
    if (s.sortField) {
      rows.sort((a, b) => {
        const x = a[s.sortField], y = b[s.sortField];
        const order = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
        return s.sortDesc ? -order : order;
      });
    }
    const size = data.page_size || 20;
    const pages = Math.max(1, Math.ceil(rows.length / size));
    s.page = Math.min(s.page, pages - 1);
    const table = el("table");
    table.dataset.role = "table";
    const head = table.createTHead().insertRow();
    columns.forEach((c) => {
      const th = el("th", (c.label || c.field) + (s.sortField === c.field ? (s.sortDesc ? " ▼" : " ▲") : ""));
      th.dataset.field = c.field;
      th.title = "Sort";
      head.appendChild(th);
    });
    const tbody = table.createTBody();
    rows.slice(s.page * size, (s.page + 1) * size).forEach((row) => {
      const tr = tbody.insertRow();
      columns.forEach((c) => {
        const td = tr.insertCell();
        td.textContent = cell(row[c.field]);
        if (typeof row[c.field] === "number") td.className = "num";
      });
    });
    const wrap = el("div", null, "table-wrap");
    wrap.appendChild(table);
    const target = body(tile);
    target.textContent = "";
    target.appendChild(wrap);
    if (pages > 1) {
      const nav = el("div", null, "pagination");
      const prev = el("button", "←", "link");
      prev.disabled = s.page === 0;
      prev.addEventListener("click", () => { s.page -= 1; drawTable(tile, data); });
      const next = el("button", "→", "link");
      next.disabled = s.page >= pages - 1;
      next.addEventListener("click", () => { s.page += 1; drawTable(tile, data); });
      nav.append(prev, el("span", `page ${s.page + 1} of ${pages} · ${rows.length} rows`, "muted"), next);
      target.appendChild(nav);
    }
  }

  function formatted(value, format) {
    // "number" (grouped digits), "percent" (0.25 -> 25%), "currency:EUR"; text values stay as they are
    if (typeof value !== "number" || !format) return cell(value);
    const [kind, code] = String(format).split(":");
    try {
      if (kind === "percent") return new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 }).format(value);
      if (kind === "currency" && code) return new Intl.NumberFormat(undefined, { style: "currency", currency: code }).format(value);
      if (kind === "number") return new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(value);
    } catch (err) {
      return cell(value); // an unknown currency code: the plain number
    }
    return cell(value);
  }

  function drawStat(tile, data) {
    const box = el("div", null, "stat");
    const value = el("span", formatted(data.value, data.format), "stat-value");
    value.dataset.role = "value";
    box.appendChild(value);
    if (typeof data.delta === "number") {
      const change = formatted(Math.abs(data.delta), data.format === "percent" ? "percent" : data.format);
      const delta = el("span", `${data.delta < 0 ? "▼" : "▲"} ${change}`, `stat-delta ${data.delta < 0 ? "down" : "up"}`);
      delta.dataset.role = "delta";
      box.appendChild(delta);
    }
    if (data.label) box.appendChild(el("div", data.label, "muted"));
    body(tile).textContent = "";
    body(tile).appendChild(box);
  }

  function drawVega(tile, data) {
    let box = tile.querySelector("[data-role=vega]");
    if (!box) {
      box = el("div", null, "widget-vega");
      box.dataset.role = "vega";
      body(tile).textContent = "";
      body(tile).appendChild(box);
    }
    // Sized to the tile (minus the axes' room); a spec's own width/height win.
    const size = { width: Math.max(80, box.clientWidth - 60), height: Math.max(60, box.clientHeight - 50) };
    const spec = Object.assign(size, data.spec);
    window.vegaEmbed(box, spec, { actions: false, renderer: "canvas" }).catch((err) => setError(tile, `Vega-Lite: ${err.message}`));
  }

  function drawHtml(tile, html) {
    // The server sanitized it (nh3: no script, no handlers, no javascript: URLs); parse it inert and move
    // the nodes in, so nothing runs on the way.
    const doc = new DOMParser().parseFromString(`<div>${html}</div>`, "text/html");
    const box = el("div", null, "widget-html");
    box.dataset.role = "html";
    box.append(...doc.body.firstChild.childNodes);
    body(tile).textContent = "";
    body(tile).appendChild(box);
  }

  // --- input widgets: controls that re-run the dashboard's workflows or send input to a run --------
  function act(tile, data, values) {
    if (data.action === "send_input") {
      if (!tile.dataset.instanceId) {
        setError(tile, "No run of this widget waits for input yet.");
        return;
      }
      rt.sendWidgetInput(tile.dataset.widgetId, tile.dataset.instanceId, values);
      setError(tile, "");
      return;
    }
    const next = Object.assign({}, params);
    Object.entries(values).forEach(([key, value]) => {
      if (value === "" || value === null || value === undefined) delete next[key];
      else next[key] = value;
    });
    params = next;
    fed.forEach((t) => { t.dataset.state = "loading"; });
    connectAll();
  }

  function field(name, prop, required) {
    const label = el("label", prop.title || name);
    let input;
    if (Array.isArray(prop.enum)) {
      input = el("select");
      if (!required) input.appendChild(new Option("—", ""));
      prop.enum.forEach((v) => input.appendChild(new Option(String(v), String(v))));
    } else {
      input = el("input");
      input.type = prop.type === "integer" || prop.type === "number" ? "number" : prop.format === "date" ? "date" : prop.type === "boolean" ? "checkbox" : "text";
      if (prop.type === "number") input.step = "any";
    }
    input.name = name;
    input.dataset.type = prop.type || "string";
    label.appendChild(input);
    return label;
  }

  function value(input) {
    if (input.type === "checkbox") return input.checked;
    if (input.value === "") return "";
    if (input.dataset.type === "integer") return parseInt(input.value, 10);
    if (input.dataset.type === "number") return parseFloat(input.value);
    return input.value;
  }

  function drawControl(tile, data) {
    const box = el("div", null, "widget-control");
    box.dataset.role = "control";
    if (data.control === "select") {
      const label = el("label", data.label);
      const select = el("select");
      select.appendChild(new Option("All", ""));
      (data.options || []).forEach((o) => select.appendChild(new Option(o.label, String(o.value))));
      if (params[data.param] !== undefined) select.value = String(params[data.param]);
      select.addEventListener("change", () => act(tile, data, { [data.param]: select.value }));
      label.appendChild(select);
      box.appendChild(label);
    } else if (data.control === "date-range") {
      const from = el("input");
      from.type = "date";
      from.value = params[data.param_from] || "";
      const inputs = [[data.param_from, from]];
      box.appendChild(el("span", data.label + " "));
      box.appendChild(from);
      if (data.param_to) {
        const to = el("input");
        to.type = "date";
        to.value = params[data.param_to] || "";
        inputs.push([data.param_to, to]);
        box.appendChild(el("span", " to "));
        box.appendChild(to);
      }
      inputs.forEach(([, input]) => input.addEventListener("change", () => {
        act(tile, data, Object.fromEntries(inputs.map(([name, i]) => [name, i.value])));
      }));
    } else if (data.control === "form") {
      const form = el("form", null, "stack");
      if (data.label) form.appendChild(el("p", data.label, "muted"));
      const required = new Set((data.schema && data.schema.required) || []);
      Object.entries((data.schema && data.schema.properties) || {}).forEach(([name, prop]) => form.appendChild(field(name, prop || {}, required.has(name))));
      const submit = el("button", data.submit_label || "Apply", "primary");
      submit.type = "submit";
      form.appendChild(submit);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const values = {};
        form.querySelectorAll("[name]").forEach((input) => { values[input.name] = value(input); });
        act(tile, data, values);
      });
      box.appendChild(form);
    } else if (data.control === "button") {
      const button = el("button", data.label, "primary");
      button.type = "button";
      button.addEventListener("click", () => {
        if (data.action === "send_input") act(tile, data, data.data || {});
        else fed.forEach((t) => rt.refreshWidget(t.dataset.widgetId, Object.keys(params).length ? params : undefined));
      });
      box.appendChild(button);
    }
    body(tile).textContent = "";
    body(tile).appendChild(box);
  }

  function draw(tile, data) {
    if (data === null || data === undefined) return;
    const type = tile.dataset.widgetType;
    if (data.control) {
      drawControl(tile, data);
      return;
    }
    if (CHART_TYPES.includes(type)) drawChart(tile, data);
    else if (type === "table") drawTable(tile, data);
    else if (type === "stat") drawStat(tile, data);
    else if (type === "vega-lite") drawVega(tile, data);
    else if (type === "markdown" || type === "html") drawHtml(tile, data.html || "");
    else if (type === "text") {
      const box = el("div", data.text, "widget-text");
      box.dataset.role = "text";
      body(tile).textContent = "";
      body(tile).appendChild(box);
    }
    else {
      const pre = el("pre", JSON.stringify(data, null, 2));
      body(tile).textContent = "";
      body(tile).appendChild(pre);
    }
  }

  function provenance(tile, prov) {
    if (!prov || !prov.instance_id) return;
    const foot = tile.querySelector("[data-role=provenance]");
    foot.dataset.instanceId = prov.instance_id;
    foot.textContent = "";
    const text = `${tile.dataset.workflowName || "workflow"}${prov.version ? " v" + prov.version : ""} · run ${prov.instance_id.slice(0, 8)}`;
    const link = el(config.share_token ? "span" : "a", text); // a shared page links to no member page
    link.dataset.role = "run-link";
    if (!config.share_token) {
      link.href = `/t/${config.tenant}/runs/${prov.instance_id}/`;
      link.title = "The run that produced this data";
    }
    foot.appendChild(link);
    if (prov.finished_at) {
      foot.appendChild(document.createTextNode(" · "));
      const when = el("time", "just now");
      when.dataset.role = "age";
      when.setAttribute("datetime", prov.finished_at);
      when.title = new Date(prov.finished_at).toLocaleString();
      foot.appendChild(when);
    }
  }

  function setError(tile, message) {
    const box = tile.querySelector("[data-role=error]");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // --- live ------------------------------------------------------------------------------------
  // A share link's page authenticates with the link's token: it may only replay and subscribe.
  const rt = window.JetRealtime.connect(config.share_token ? { token: config.share_token } : {});
  rt.onState((s) => {
    live.dataset.state = s;
    live.textContent = s;
    live.title = s;
  });

  function handler(tile) {
    return (event, data) => {
      if (data && data.instance_id) tile.dataset.instanceId = data.instance_id; // where send_input goes
      if (event === "widget_input_accepted") {
        setError(tile, "");
        return;
      }
      if (event === "widget_workflow_connected") {
        if (data.mode === "replay") { // a finished run's data, in one message (a shared dashboard)
          if (data.processed_data !== null && data.processed_data !== undefined) draw(tile, data.processed_data);
          provenance(tile, data.provenance);
          tile.dataset.state = "done";
        } else if (!tile.querySelector("canvas, table, .stat, pre")) tile.dataset.state = "loading";
      } else if (event === "widget_context_update") {
        draw(tile, data.processed_data);
        tile.dataset.state = "live";
        setError(tile, "");
      } else if (event === "widget_workflow_status") {
        if (data.processed_data !== null && data.processed_data !== undefined) draw(tile, data.processed_data);
        provenance(tile, data.provenance);
        const stale = tile.querySelector("[data-role=stale]");
        if (stale && data.status === "succeeded") stale.hidden = true;
        if (data.status === "succeeded") {
          tile.dataset.state = "done";
          setError(tile, "");
        }
      } else if (event === "widget_workflow_error") {
        tile.dataset.state = "error";
        setError(tile, (data.error && data.error.message) || "The widget could not be drawn.");
      } else if (event === "error") {
        tile.dataset.state = "error";
        setError(tile, data.message);
      }
    };
  }

  const fed = tiles.filter((tile) => tile.dataset.live === "1"); // widgets without a workflow are static
  let params = config.params || {}; // the filters' values (also in the URL, so a view can be shared)
  function connectAll() {
    const options = { mode: config.share_token ? "replay" : "execute", dashboardId: config.dashboard };
    if (Object.keys(params).length) options.inputParams = params;
    fed.forEach((tile) => rt.connectWidget(tile.dataset.widgetId, options, handler(tile)));
  }

  // --- filters ---------------------------------------------------------------------------------
  const bar = document.querySelector("[data-role=filters]");
  function applyFilters() {
    const next = {};
    const query = new URLSearchParams();
    bar.querySelectorAll("[data-param]").forEach((input) => {
      if (input.value) {
        next[input.dataset.param] = input.value;
        query.set(input.name, input.value);
      }
    });
    params = next;
    const search = query.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
    fed.forEach((tile) => { tile.dataset.state = "loading"; });
    connectAll();
  }
  if (bar) {
    bar.addEventListener("change", applyFilters);
    bar.querySelector("[data-role=clear-filters]").addEventListener("click", (event) => {
      event.preventDefault();
      bar.querySelectorAll("[data-param]").forEach((input) => { input.value = ""; });
      applyFilters();
    });
  }
  function crossFilter(wid, label) {
    // A select filter fed by this widget takes the clicked category (a second click on it clears it).
    (config.filters || []).filter((f) => f.from_widget === wid).forEach((f) => {
      const select = bar && bar.querySelector(`select[data-filter="${CSS.escape(f.id)}"]`);
      if (!select) return;
      const value = String(label);
      if (!Array.from(select.options).some((o) => o.value === value)) select.appendChild(new Option(value, value));
      select.value = select.value === value ? "" : value;
      applyFilters();
    });
  }

  tiles.forEach((tile) => {
    const script = document.getElementById(`wdata-${tile.dataset.widgetId}`);
    const data = script ? JSON.parse(script.textContent) : null;
    const byServer = ["text", "markdown", "html"]; // drawn by the server already (a number is formatted here)
    if (data !== null && !byServer.includes(tile.dataset.widgetType)) draw(tile, data);
    else if (data !== null) state.set(tile.dataset.widgetId, { data });
    tile.addEventListener("click", (event) => {
      const th = event.target.closest("th[data-field]");
      if (th && tile.dataset.widgetType === "table") {
        const s = state.get(tile.dataset.widgetId);
        if (!s || !s.data) return;
        s.sortDesc = s.sortField === th.dataset.field ? !s.sortDesc : false;
        s.sortField = th.dataset.field;
        drawTable(tile, s.data);
      }
      if (event.target.closest("[data-role=png]")) {
        const canvas = tile.querySelector("canvas");
        if (!canvas) return;
        const a = el("a");
        a.href = canvas.toDataURL("image/png");
        a.download = `${tile.querySelector("h2").textContent.replace(/[^\w.-]+/g, "_")}.png`;
        document.body.appendChild(a);
        a.click();
        a.remove();
      }
    });
  });
  connectAll();
  setInterval(connectAll, Math.max(5, config.refresh_s) * 1000); // a run within the interval is reused
  const refresh = document.querySelector("[data-role=refresh-all]");
  if (refresh) refresh.addEventListener("click", () => fed.forEach((tile) => rt.refreshWidget(tile.dataset.widgetId)));
})();
