/* jetadmin workflow editor: the graph of a workflow on a Drawflow canvas (static/vendor/drawflow).
 *
 * The graph JSON ({nodes, edges, notes}) is the source of truth; Drawflow only draws it. Every change
 * (drop, connect, move, delete, a form field) updates the graph, records an undo step and asks the API to
 * validate it (errors are shown on the node and field). Save PATCHes the graph (a new version). A test run
 * posts the unsaved graph to …/workflows/test/ and follows it over /ws/ (static/js/realtime.js): each
 * node's element carries data-status. Pinned outputs ("pinned": {output}) make test runs skip a node.
 * The Versions panel lists, diffs and restores versions; the Tests panel runs the workflow's test cases.
 * Plain JavaScript, no build step. User data is only ever set as text (textContent / value).
 */
(function () {
  "use strict";

  const root = document.getElementById("editor");
  const dataEl = document.getElementById("editor-data");
  if (!root || !dataEl || typeof Drawflow === "undefined") return;
  const cfg = JSON.parse(dataEl.textContent);
  const api = cfg.api;
  const wid = cfg.workflow.id;
  const canEdit = !!cfg.can_edit;
  const types = Object.fromEntries(cfg.node_types.map((t) => [t.type, t]));
  const csrf = (root.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  const panel = root.querySelector(".wf-panel");
  const stateEl = root.querySelector("[data-testid=editor-state]");
  const canvasEl = document.getElementById("wf-canvas");
  const minimap = root.querySelector(".wf-minimap");
  const NODE_W = 180;
  const NODE_H = 64;
  const CLIP_KEY = "jetadmin.editor.clipboard";
  const TERMINAL = ["succeeded", "failed", "canceled"];

  let graph = normalize(cfg.graph); // positioned by the server where the saved graph had none
  let saved = JSON.stringify(graph);
  const past = [saved];
  const future = [];
  let errors = []; // [{node_id, field, message}]
  let selection = new Set(); // node ids
  let lastRun = cfg.past_run; // {id, status, nodes: {id: {status, input, output, error}}, input}
  let testInput = lastRun ? lastRun.input : {};
  let running = null; // instance id of the test run in flight
  let rendering = false;
  let shiftDown = false;
  let diffMarks = {};
  const df2id = new Map();
  const id2df = new Map();
  const df2note = new Map();

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    });
    children.flat().forEach((c) => c != null && e.append(c));
    return e;
  }
  const json = (v) => JSON.stringify(v, null, 2);
  function normalize(g) {
    const out = { nodes: [], edges: [], ...(g || {}) };
    out.nodes = (out.nodes || []).map((n) => ({ inputs: {}, ...n }));
    out.edges = (out.edges || []).map((e) => {
      const edge = { source: e.source ?? e.from, target: e.target ?? e.to };
      const h = e.sourceHandle ?? e.handle;
      if (h) edge.sourceHandle = h;
      return edge;
    });
    if (!out.notes || !out.notes.length) delete out.notes;
    return out;
  }
  async function call(method, url, body) {
    const res = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    return { ok: res.ok, status: res.status, data };
  }
  function say(text, kind) {
    stateEl.textContent = text;
    stateEl.dataset.kind = kind || "";
  }
  function nodeById(id) {
    return graph.nodes.find((n) => n.id === id);
  }
  function handlesOf(node) {
    const t = types[node.type];
    const inp = node.inputs || {};
    let hs = t ? t.handles.slice() : ["output"];
    const ids = (list) => (Array.isArray(list) ? list.filter((b) => b && typeof b === "object").map((b) => String(b.id)) : []);
    if (node.type === "condition" && Array.isArray(inp.branches)) hs = [...ids(inp.branches), "default"];
    if (node.type === "switch") hs = [...ids(inp.cases), "default"];
    if (node.on_error === "route" && !hs.includes("error")) hs.push("error");
    return hs;
  }
  function hasInput(node) {
    return node.type !== "start";
  }
  function uniqueId(base) {
    const clean = String(base).replace(/[^A-Za-z0-9_-]/g, "_").replace(/^([^A-Za-z_])/, "_$1") || "node";
    let id = clean;
    let i = 1;
    while (nodeById(id) || ["input", "loop", "ctx"].includes(id)) id = `${clean}_${i++}`;
    return id;
  }
  function upstream(id) {
    const seen = new Set();
    const stack = [id];
    while (stack.length) {
      const cur = stack.pop();
      graph.edges.filter((e) => e.target === cur).forEach((e) => {
        if (!seen.has(e.source) && e.source !== id) {
          seen.add(e.source);
          stack.push(e.source);
        }
      });
    }
    return seen;
  }

  // ---------------------------------------------------------------- the canvas
  const editor = new Drawflow(canvasEl);
  editor.reroute = false;
  editor.zoom_max = 2;
  editor.zoom_min = 0.2;
  editor.editor_mode = canEdit ? "edit" : "view";
  editor.key = function (e) {
    this.dispatch("keydown", e); // deletion is ours: it must also remove a multi-selection
  };
  canvasEl.classList.remove("wf-canvas"); // Drawflow reads its own class as the container's first one
  editor.start();
  canvasEl.classList.add("wf-canvas");

  function nodeContent(node) {
    const t = types[node.type];
    return el(
      "div",
      { class: "wf-node-inner" },
      el("div", { class: "wf-node-title", text: node.label || node.id }),
      el("div", { class: "wf-node-type", text: `${node.id !== (node.label || node.id) ? node.id + " · " : ""}${t ? t.name : node.type}` }),
      el("div", { class: "wf-node-badges" }, node.pinned ? el("span", { class: "wf-pin", title: "Output pinned: test runs skip this node", text: "pinned" }) : null),
      el("div", { class: "wf-node-err", "data-role": "node-error" }),
    );
  }
  function drawNode(node) {
    const hs = node.type === "end" ? [] : handlesOf(node);
    const pos = node.position || { x: 40, y: 40 };
    const dfId = editor.addNode(node.type, hasInput(node) ? 1 : 0, hs.length, pos.x, pos.y, `wf-node cat-${(types[node.type] || {}).category || "other"}`, {}, "");
    const box = document.getElementById(`node-${dfId}`);
    box.dataset.nodeId = node.id;
    box.dataset.type = node.type;
    box.dataset.status = (lastRun && lastRun.nodes[node.id] && lastRun.nodes[node.id].status) || "";
    box.querySelector(".drawflow_content_node").append(nodeContent(node));
    box.querySelectorAll(".outputs .output").forEach((o, i) => {
      o.dataset.handle = hs[i];
      o.title = `${hs[i]}: drag to a node to connect`;
    });
    df2id.set(String(dfId), node.id);
    id2df.set(node.id, String(dfId));
  }
  function drawNote(note) {
    const pos = note.position || { x: 40, y: 40 };
    const dfId = editor.addNode("note", 0, 0, pos.x, pos.y, "wf-note", {}, "");
    const box = document.getElementById(`node-${dfId}`);
    const text = el("textarea", { "aria-label": "Sticky note", rows: 4, readonly: !canEdit });
    text.value = note.text || "";
    text.addEventListener("change", () => {
      note.text = text.value;
      commit();
    });
    box.querySelector(".drawflow_content_node").append(text);
    df2note.set(String(dfId), note);
  }
  function render() {
    rendering = true;
    editor.clear();
    df2id.clear();
    id2df.clear();
    df2note.clear();
    graph.nodes.forEach(drawNode);
    (graph.notes || []).forEach(drawNote);
    graph.edges.forEach((e) => {
      const src = nodeById(e.source);
      if (!src || !id2df.has(e.target)) return;
      const hs = handlesOf(src);
      const idx = Math.max(0, hs.indexOf(e.sourceHandle || hs[0]));
      try {
        editor.addConnection(id2df.get(e.source), id2df.get(e.target), `output_${idx + 1}`, "input_1");
      } catch (err) {
        /* an edge to a node without that handle: validation reports it */
      }
    });
    rendering = false;
    markErrors();
    markSelection();
    markDiff();
    drawMinimap();
  }

  editor.on("nodeMoved", (dfId) => {
    const d = editor.drawflow.drawflow.Home.data[dfId];
    const pos = { x: Math.round(d.pos_x), y: Math.round(d.pos_y) };
    const note = df2note.get(String(dfId));
    if (note) note.position = pos;
    else {
      const node = nodeById(df2id.get(String(dfId)));
      if (node) node.position = pos;
    }
    commit({ validate: false });
  });
  editor.on("connectionCreated", (c) => {
    if (rendering) return;
    const source = df2id.get(String(c.output_id));
    const target = df2id.get(String(c.input_id));
    const src = nodeById(source);
    if (!src || !target) return;
    const hs = handlesOf(src);
    const handle = hs[parseInt(c.output_class.replace("output_", ""), 10) - 1];
    const edge = { source, target };
    if (hs.length > 1 || handle !== hs[0] || handle === "error") edge.sourceHandle = handle;
    graph.edges.push(edge);
    commit();
  });
  editor.on("connectionRemoved", (c) => {
    if (rendering) return;
    const source = df2id.get(String(c.output_id));
    const target = df2id.get(String(c.input_id));
    const src = nodeById(source);
    if (!src) return;
    const hs = handlesOf(src);
    const handle = hs[parseInt(c.output_class.replace("output_", ""), 10) - 1];
    const i = graph.edges.findIndex((e) => e.source === source && e.target === target && (e.sourceHandle || hs[0]) === handle);
    if (i >= 0) graph.edges.splice(i, 1);
    commit();
  });
  editor.on("nodeSelected", (dfId) => {
    const id = df2id.get(String(dfId));
    if (!id) return;
    if (shiftDown) selection.add(id);
    else selection = new Set([id]);
    markSelection();
    showPanel();
  });
  editor.on("nodeUnselected", () => {
    if (shiftDown) return;
    selection = new Set();
    markSelection();
    showPanel();
  });
  ["translate", "zoom"].forEach((ev) => editor.on(ev, () => requestAnimationFrame(drawMinimap)));
  canvasEl.addEventListener("mousedown", (e) => {
    shiftDown = e.shiftKey;
  }, true);

  function markSelection() {
    canvasEl.querySelectorAll(".drawflow-node").forEach((b) => b.classList.toggle("wf-selected", selection.has(b.dataset.nodeId)));
  }
  function markErrors() {
    canvasEl.querySelectorAll(".drawflow-node[data-node-id]").forEach((b) => {
      const mine = errors.filter((e) => e.node_id === b.dataset.nodeId);
      b.classList.toggle("has-error", mine.length > 0);
      const slot = b.querySelector("[data-role=node-error]");
      if (slot) slot.textContent = mine.length ? mine[0].message : "";
    });
  }
  function markDiff() {
    canvasEl.querySelectorAll(".drawflow-node[data-node-id]").forEach((b) => {
      b.dataset.diff = diffMarks[b.dataset.nodeId] || "";
    });
  }
  function setStatus(id, status) {
    const dfId = id2df.get(id);
    const box = dfId && document.getElementById(`node-${dfId}`);
    if (box) box.dataset.status = status;
  }

  // ---------------------------------------------------------------- history, validation, save
  let validateTimer = null;
  function commit(opts) {
    const snap = JSON.stringify(graph);
    if (snap !== past[past.length - 1]) {
      past.push(snap);
      if (past.length > 200) past.shift();
      future.length = 0;
    }
    dirty();
    if (!opts || opts.validate !== false) scheduleValidate();
    requestAnimationFrame(drawMinimap);
  }
  function showVersion() {
    const badge = document.querySelector(".page-head .badge");
    if (badge && cfg.version) badge.textContent = `v${cfg.version}`;
  }
  function dirty() {
    const changed = JSON.stringify(graph) !== saved;
    root.dataset.dirty = changed ? "1" : "0";
    if (changed) say(errors.length ? `Unsaved changes · ${errors.length} problem(s)` : "Unsaved changes", errors.length ? "error" : "");
    else if (!errors.length) say(cfg.version ? `Saved · version ${cfg.version}` : "Not saved yet", "ok");
  }
  function restoreSnap(snap) {
    graph = JSON.parse(snap);
    selection = new Set([...selection].filter((id) => nodeById(id)));
    render();
    dirty();
    scheduleValidate();
    showPanel();
  }
  function undo() {
    if (past.length < 2) return;
    future.push(past.pop());
    restoreSnap(past[past.length - 1]);
  }
  function redo() {
    if (!future.length) return;
    const snap = future.pop();
    past.push(snap);
    restoreSnap(snap);
  }
  function scheduleValidate() {
    clearTimeout(validateTimer);
    validateTimer = setTimeout(validate, 250);
  }
  async function validate() {
    const res = await call("POST", `${api}validate/`, { graph });
    if (!res.ok || !res.data) return;
    errors = res.data.errors || [];
    root.dataset.valid = res.data.valid ? "1" : "0";
    markErrors();
    dirty();
    if (errors.length && JSON.stringify(graph) === saved) say(`${errors.length} problem(s)`, "error");
    if (!panel.contains(document.activeElement)) showPanel();
    else showErrorsInPanel();
  }
  async function save() {
    const res = await call("PATCH", `${api}${wid}/`, { graph });
    if (res.ok) {
      saved = JSON.stringify(graph);
      cfg.version = res.data.version;
      errors = [];
      markErrors();
      dirty();
      say(`Saved · version ${res.data.version}`, "ok");
      showVersion();
      return true;
    }
    const details = res.data && res.data.error && res.data.error.details;
    if (details && Array.isArray(details.graph)) {
      errors = details.graph;
      markErrors();
      showPanel();
    }
    say((res.data && res.data.error && res.data.error.message) || `Not saved (HTTP ${res.status}).`, "error");
    return false;
  }
  window.addEventListener("beforeunload", (e) => {
    if (canEdit && JSON.stringify(graph) !== saved) {
      e.preventDefault();
      e.returnValue = "";
    }
  });

  // ---------------------------------------------------------------- adding, deleting, copy and paste
  function canvasPoint(clientX, clientY) {
    const r = editor.precanvas.getBoundingClientRect();
    return { x: Math.round((clientX - r.x) / editor.zoom), y: Math.round((clientY - r.y) / editor.zoom) };
  }
  function viewCenter() {
    const r = canvasEl.getBoundingClientRect();
    return canvasPoint(r.x + r.width / 2 - NODE_W / 2, r.y + r.height / 2 - NODE_H / 2);
  }
  function freeSpot(at, w, h) {
    // moves `at` down until a w×h box there covers no node or note: added things never hide others
    const boxes = [...graph.nodes, ...(graph.notes || [])].map((n) => n.position).filter(Boolean);
    const taken = () => boxes.some((p) => p.x < at.x + w && p.x + NODE_W > at.x && p.y < at.y + h && p.y + NODE_H > at.y);
    for (let i = 0; i < 50 && taken(); i++) at.y += NODE_H + 30;
    return at;
  }
  function addNode(type, pos) {
    const node = { id: uniqueId(type), type, inputs: {}, position: pos || freeSpot(viewCenter(), NODE_W, NODE_H) };
    graph.nodes.push(node);
    drawNode(node);
    selection = new Set([node.id]);
    commit();
    markSelection();
    showPanel();
    return node;
  }
  function deleteSelection() {
    if (!selection.size) {
      if (editor.connection_selected) editor.removeConnection();
      return;
    }
    const gone = selection;
    graph.nodes = graph.nodes.filter((n) => !gone.has(n.id));
    graph.edges = graph.edges.filter((e) => !gone.has(e.source) && !gone.has(e.target));
    selection = new Set();
    render();
    commit();
    showPanel();
  }
  function copySelection() {
    if (!selection.size) return;
    const nodes = graph.nodes.filter((n) => selection.has(n.id));
    const edges = graph.edges.filter((e) => selection.has(e.source) && selection.has(e.target));
    const clip = JSON.stringify({ kind: "jetadmin-nodes", nodes, edges });
    localStorage.setItem(CLIP_KEY, clip);
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(clip).catch(() => {});
    say(`Copied ${nodes.length} node(s)`, "ok");
  }
  function paste() {
    let clip;
    try {
      clip = JSON.parse(localStorage.getItem(CLIP_KEY) || "null");
    } catch (e) {
      clip = null;
    }
    if (!clip || clip.kind !== "jetadmin-nodes" || !clip.nodes.length) return;
    const rename = {};
    const minX = Math.min(...clip.nodes.map((n) => (n.position || {}).x || 0));
    const minY = Math.min(...clip.nodes.map((n) => (n.position || {}).y || 0));
    const at = viewCenter();
    freeSpot(at, Math.max(...clip.nodes.map((n) => (n.position || {}).x || 0)) - minX + NODE_W, Math.max(...clip.nodes.map((n) => (n.position || {}).y || 0)) - minY + NODE_H);
    clip.nodes.forEach((n) => {
      const copy = JSON.parse(JSON.stringify(n));
      copy.id = uniqueId(n.id);
      rename[n.id] = copy.id;
      const p = n.position || { x: minX, y: minY };
      copy.position = { x: at.x + (p.x - minX), y: at.y + (p.y - minY) };
      graph.nodes.push(copy);
    });
    clip.edges.forEach((e) => graph.edges.push({ ...e, source: rename[e.source], target: rename[e.target] }));
    selection = new Set(Object.values(rename));
    render();
    commit();
    showPanel();
    say(`Pasted ${clip.nodes.length} node(s)`, "ok");
  }
  function addNote() {
    graph.notes = graph.notes || [];
    const note = { id: `note_${Date.now().toString(36)}`, text: "", position: freeSpot(viewCenter(), 200, 110) };
    graph.notes.push(note);
    drawNote(note);
    commit();
  }
  function noteDeleted(dfId) {
    const note = df2note.get(String(dfId));
    if (!note) return;
    graph.notes = (graph.notes || []).filter((n) => n !== note);
    if (!graph.notes.length) delete graph.notes;
    commit({ validate: false });
  }
  editor.on("nodeRemoved", (dfId) => {
    if (rendering) return;
    const id = df2id.get(String(dfId));
    if (!id) return noteDeleted(dfId);
    graph.nodes = graph.nodes.filter((n) => n.id !== id); // Drawflow's own delete button
    graph.edges = graph.edges.filter((e) => e.source !== id && e.target !== id);
    selection.delete(id);
    df2id.delete(String(dfId));
    id2df.delete(id);
    commit();
    showPanel();
  });
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && (t.closest("input, textarea, select, [contenteditable]") || !root.isConnected)) return;
    const mod = e.ctrlKey || e.metaKey;
    if (!canEdit) return;
    if (e.key === "Delete" || (e.key === "Backspace" && e.metaKey)) {
      if (document.activeElement && document.activeElement.closest && document.activeElement.closest(".wf-panel")) return;
      const note = editor.node_selected && df2note.get(editor.node_selected.id.replace("node-", ""));
      if (note) {
        editor.removeNodeId(editor.node_selected.id);
      } else deleteSelection();
      e.preventDefault();
    } else if (mod && e.key.toLowerCase() === "z") {
      e.preventDefault();
      if (e.shiftKey) redo();
      else undo();
    } else if (mod && e.key.toLowerCase() === "y") {
      e.preventDefault();
      redo();
    } else if (mod && e.key.toLowerCase() === "c") {
      copySelection();
    } else if (mod && e.key.toLowerCase() === "v") {
      e.preventDefault();
      paste();
    } else if (mod && e.key.toLowerCase() === "s") {
      e.preventDefault();
      save();
    }
  });

  // ---------------------------------------------------------------- view: fit, zoom, layout, minimap
  function bounds() {
    const pts = [...graph.nodes.map((n) => n.position || { x: 0, y: 0 }), ...(graph.notes || []).map((n) => n.position || { x: 0, y: 0 })];
    if (!pts.length) return { x: 0, y: 0, w: NODE_W, h: NODE_H };
    const xs = pts.map((p) => p.x);
    const ys = pts.map((p) => p.y);
    const x = Math.min(...xs);
    const y = Math.min(...ys);
    return { x, y, w: Math.max(...xs) + NODE_W - x, h: Math.max(...ys) + NODE_H - y };
  }
  function setView(zoom, cx, cy) {
    const W = canvasEl.clientWidth;
    const H = canvasEl.clientHeight;
    editor.zoom = zoom;
    editor.zoom_last_value = zoom;
    editor.canvas_x = -(cx - W / 2) * zoom;
    editor.canvas_y = -(cy - H / 2) * zoom;
    editor.precanvas.style.transform = `translate(${editor.canvas_x}px, ${editor.canvas_y}px) scale(${zoom})`;
    drawMinimap();
  }
  function fit() {
    const b = bounds();
    const pad = 60;
    const zoom = Math.max(editor.zoom_min, Math.min(1, canvasEl.clientWidth / (b.w + pad * 2), canvasEl.clientHeight / (b.h + pad * 2)));
    setView(zoom, b.x + b.w / 2, b.y + b.h / 2);
  }
  function layoutMissing(g) {
    // a graph from elsewhere (an import, a restored version) may have nodes without a position
    if (g.nodes.every((n) => n.position && typeof n.position.x === "number")) return g;
    layoutAll(g);
    return g;
  }
  function layoutAll(target) {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 30, ranksep: 80, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(() => ({}));
    target.nodes.forEach((n) => g.setNode(n.id, { width: NODE_W, height: NODE_H }));
    target.edges.forEach((e) => g.hasNode(e.source) && g.hasNode(e.target) && g.setEdge(e.source, e.target));
    dagre.layout(g);
    target.nodes.forEach((n) => {
      const p = g.node(n.id);
      n.position = { x: Math.round(p.x - NODE_W / 2), y: Math.round(p.y - NODE_H / 2) };
    });
  }
  function tidy() {
    layoutAll(graph);
    render();
    commit({ validate: false });
    fit();
  }
  function drawMinimap() {
    if (!minimap) return;
    const ctx = minimap.getContext("2d");
    const b = bounds();
    const s = Math.min((minimap.width - 10) / b.w, (minimap.height - 10) / b.h);
    ctx.clearRect(0, 0, minimap.width, minimap.height);
    ctx.fillStyle = getComputedStyle(root).getPropertyValue("--muted") || "#888";
    graph.nodes.forEach((n) => {
      const p = n.position || { x: 0, y: 0 };
      ctx.fillRect(5 + (p.x - b.x) * s, 5 + (p.y - b.y) * s, Math.max(2, NODE_W * s), Math.max(2, NODE_H * s));
    });
    // the visible part of the canvas
    const W = canvasEl.clientWidth;
    const H = canvasEl.clientHeight;
    const z = editor.zoom;
    const left = (0 - editor.canvas_x - W / 2) / z + W / 2;
    const top = (0 - editor.canvas_y - H / 2) / z + H / 2;
    ctx.strokeStyle = getComputedStyle(root).getPropertyValue("--accent") || "#36c";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(5 + (left - b.x) * s, 5 + (top - b.y) * s, (W / z) * s, (H / z) * s);
    minimap._scale = { b, s };
  }
  if (minimap) {
    minimap.addEventListener("click", (e) => {
      const m = minimap._scale;
      if (!m) return;
      const r = minimap.getBoundingClientRect();
      setView(editor.zoom, m.b.x + (e.clientX - r.x - 5) / m.s, m.b.y + (e.clientY - r.y - 5) / m.s);
    });
  }

  // ---------------------------------------------------------------- the palette
  function buildPalette() {
    const box = root.querySelector("[data-role=palette]");
    if (!box) return;
    const search = root.querySelector("[data-role=palette-search]");
    const groups = {};
    cfg.node_types.forEach((t) => (groups[t.category] = groups[t.category] || []).push(t));
    Object.keys(groups).sort().forEach((cat) => {
      const list = el("div", { class: "wf-group", "data-category": cat }, el("h3", { text: cat }));
      groups[cat].forEach((t) => {
        const item = el("div", {
          class: "wf-item",
          draggable: "true",
          tabindex: "0",
          role: "button",
          "data-type": t.type,
          title: t.description || t.name,
          text: t.name,
        });
        item.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/x-jetadmin-node", t.type));
        item.addEventListener("click", () => addNode(t.type));
        item.addEventListener("keydown", (e) => {
          if (e.key === "Enter") addNode(t.type);
        });
        list.append(item);
      });
      box.append(list);
    });
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      box.querySelectorAll(".wf-item").forEach((i) => {
        i.hidden = q && !(i.textContent.toLowerCase().includes(q) || i.dataset.type.toLowerCase().includes(q));
      });
      box.querySelectorAll(".wf-group").forEach((g) => {
        g.hidden = !g.querySelector(".wf-item:not([hidden])");
      });
    });
    canvasEl.addEventListener("dragover", (e) => e.preventDefault());
    canvasEl.addEventListener("drop", (e) => {
      const type = e.dataTransfer.getData("text/x-jetadmin-node");
      if (!type || !types[type]) return;
      e.preventDefault();
      const p = canvasPoint(e.clientX, e.clientY);
      addNode(type, { x: p.x - NODE_W / 2, y: p.y - NODE_H / 2 });
    });
  }

  // ---------------------------------------------------------------- the side panel
  function fill(target, ...kids) {
    target.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  }
  function setPanel(...kids) {
    fill(panel, ...kids);
  }
  function refsFor(id) {
    const list = document.getElementById("wf-refs");
    list.replaceChildren();
    const add = (v) => list.append(el("option", { value: v }));
    add("{{input}}");
    upstream(id).forEach((up) => {
      const n = nodeById(up);
      const t = n && types[n.type];
      add(`{{${up}}}`);
      const props = (t && t.outputs_schema && t.outputs_schema.properties) || {};
      Object.keys(props).forEach((k) => add(`{{${up}.${k}}}`));
      const out = lastRun && lastRun.nodes[up] && lastRun.nodes[up].output;
      if (out && typeof out === "object" && !Array.isArray(out)) Object.keys(out).forEach((k) => props[k] || add(`{{${up}.${k}}}`));
    });
  }
  function fieldError(path) {
    const mine = errors.filter((e) => e.node_id === panel.dataset.node && (e.field === path || e.field.startsWith(path + ".") || e.field.startsWith(path + "[")));
    return mine.length ? el("ul", { class: "errorlist", "data-field": path }, mine.map((e) => el("li", { text: e.message }))) : null;
  }
  function update(node, fn) {
    fn(node);
    const dfId = id2df.get(node.id);
    render();
    commit();
    if (dfId) markSelection();
  }
  function inputField(node, key, prop, required) {
    const id = `wf-f-${key}`;
    const value = (node.inputs || {})[key];
    const label = el("label", { for: id, text: `${key}${required ? " *" : ""}` });
    const help = prop.description ? el("p", { class: "help", text: prop.description }) : null;
    const ptype = Array.isArray(prop.type) ? null : prop.type;
    let input;
    const set = (v) => update(node, (n) => {
      n.inputs = { ...(n.inputs || {}) };
      if (v === undefined || v === "") delete n.inputs[key];
      else n.inputs[key] = v;
    });
    if (prop.enum) {
      input = el("select", { id, name: key, disabled: !canEdit }, el("option", { value: "", text: "—" }), prop.enum.map((o) => el("option", { value: String(o), text: String(o) })));
      input.value = value === undefined ? "" : String(value);
      input.addEventListener("change", () => set(input.value === "" ? undefined : prop.enum.find((o) => String(o) === input.value)));
    } else if (ptype === "boolean") {
      input = el("input", { id, name: key, type: "checkbox", disabled: !canEdit });
      input.checked = !!value;
      input.addEventListener("change", () => set(input.checked));
    } else if (ptype === "string" && !["code", "body", "sql", "text", "message", "html"].includes(key) && !(prop.maxLength > 500)) {
      input = el("input", { id, name: key, list: "wf-refs", autocomplete: "off", readonly: !canEdit });
      input.value = value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
      input.addEventListener("change", () => set(input.value));
    } else if (ptype === "string") {
      input = el("textarea", { id, name: key, rows: key === "code" ? 8 : 4, class: "mono", spellcheck: "false", readonly: !canEdit });
      input.value = value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
      input.addEventListener("change", () => set(input.value));
    } else if (ptype === "number" || ptype === "integer") {
      input = el("input", { id, name: key, list: "wf-refs", readonly: !canEdit, inputmode: "decimal" });
      input.value = value === undefined ? "" : typeof value === "string" ? value : String(value);
      input.addEventListener("change", () => {
        const v = input.value.trim();
        set(v === "" ? undefined : v.startsWith("{{") ? v : Number(v));
      });
    } else {
      input = el("textarea", { id, name: key, rows: 4, class: "mono", spellcheck: "false", readonly: !canEdit, placeholder: "JSON, or a template such as {{node.result}}" });
      input.value = value === undefined ? "" : typeof value === "string" ? value : json(value);
      input.addEventListener("change", () => {
        const v = input.value.trim();
        if (v === "") return set(undefined);
        try {
          set(JSON.parse(v));
        } catch (e) {
          if (v.startsWith("{{")) return set(v);
          input.setCustomValidity("Not JSON");
          const bad = el("ul", { class: "errorlist", "data-field": `inputs.${key}` }, el("li", { text: `Enter JSON (${e.message}) or a {{template}}.` }));
          input.after(bad);
        }
      });
    }
    return el("div", { class: "wf-field" }, label, input, help, fieldError(`inputs.${key}`));
  }
  function showErrorsInPanel() {
    const slot = panel.querySelector("[data-role=node-errors]");
    if (!slot) return;
    const mine = errors.filter((e) => e.node_id === panel.dataset.node);
    slot.replaceChildren(...mine.map((e) => el("li", { text: `${e.field}: ${e.message}` })));
  }
  function runSection(node) {
    const r = lastRun && lastRun.nodes[node.id];
    if (!r) return null;
    const parts = [el("h3", { text: "Last run" }), el("p", {}, el("span", { class: `status status-${r.status}`, "data-role": "run-status", text: r.status }))];
    if (r.input !== undefined && r.input !== null) parts.push(el("details", {}, el("summary", { text: "Input" }), el("pre", { class: "wf-json", text: json(r.input) })));
    if (r.output !== undefined && r.output !== null) parts.push(el("details", { open: true }, el("summary", { text: "Output" }), el("pre", { class: "wf-json", "data-role": "node-output", text: json(r.output) })));
    if (r.error) parts.push(el("pre", { class: "wf-json error", "data-role": "node-run-error", text: json(r.error) }));
    if (canEdit && r.status === "succeeded")
      parts.push(el("button", { type: "button", class: "secondary", text: "Pin this output", onclick: () => {
        update(node, (n) => (n.pinned = { output: r.output }));
        showPanel();
      } }));
    if (canEdit && lastRun.id)
      parts.push(el("button", { type: "button", class: "secondary", text: "Re-run from here", title: "Test-run again with the upstream nodes' outputs of this run pinned", onclick: () => rerunFrom(node.id) }));
    return el("section", { class: "wf-run" }, parts);
  }
  function pinSection(node) {
    const text = el("textarea", { id: "wf-pin", rows: 4, class: "mono", spellcheck: "false", readonly: !canEdit, placeholder: '{"rows": []}' });
    text.value = node.pinned ? json(node.pinned.output) : "";
    const parts = [el("label", { for: "wf-pin", text: "Pinned output (JSON)" }), text, el("p", { class: "help", text: "Test runs skip a pinned node and use this output; real runs ignore it." })];
    if (canEdit) {
      parts.push(
        el("button", {
          type: "button",
          class: "secondary",
          text: node.pinned ? "Update pin" : "Pin output",
          onclick: () => {
            try {
              const output = JSON.parse(text.value);
              update(node, (n) => (n.pinned = { output }));
              showPanel();
            } catch (e) {
              text.after(el("ul", { class: "errorlist", "data-field": "pinned" }, el("li", { text: `Enter JSON (${e.message}).` })));
            }
          },
        }),
      );
      if (node.pinned) parts.push(el("button", { type: "button", class: "link", text: "Unpin", onclick: () => {
        update(node, (n) => delete n.pinned);
        showPanel();
      } }));
    }
    return el("details", { class: "wf-pin-box", open: !!node.pinned }, el("summary", { text: node.pinned ? "Pinned output ✓" : "Pin an output" }), parts, fieldError("pinned"));
  }
  function nodePanel(node) {
    const t = types[node.type] || { name: node.type, inputs_schema: {} };
    panel.dataset.node = node.id;
    refsFor(node.id);
    const schema = t.inputs_schema || {};
    const required = new Set(schema.required || []);
    const props = schema.properties || {};
    const idInput = el("input", { id: "wf-id", name: "id", value: node.id, readonly: !canEdit });
    idInput.addEventListener("change", () => {
      const next = idInput.value.trim();
      if (!next || next === node.id || nodeById(next)) {
        idInput.value = node.id;
        return;
      }
      const old = node.id;
      update(node, (n) => {
        n.id = next;
        graph.edges.forEach((e) => {
          if (e.source === old) e.source = next;
          if (e.target === old) e.target = next;
        });
      });
      selection = new Set([next]);
      showPanel();
    });
    const labelInput = el("input", { id: "wf-label", name: "label", value: node.label || "", readonly: !canEdit });
    labelInput.addEventListener("change", () => update(node, (n) => (labelInput.value ? (n.label = labelInput.value) : delete n.label)));
    const onError = el("select", { id: "wf-on-error", name: "on_error", disabled: !canEdit }, ["fail", "continue", "route"].map((o) => el("option", { value: o, text: o })));
    onError.value = node.on_error || "fail";
    onError.addEventListener("change", () => update(node, (n) => (onError.value === "fail" ? delete n.on_error : (n.on_error = onError.value))));
    const timeout = el("input", { id: "wf-timeout", name: "timeout_s", type: "number", min: "0", step: "any", value: node.timeout_s ?? "", readonly: !canEdit });
    timeout.addEventListener("change", () => update(node, (n) => (timeout.value === "" ? delete n.timeout_s : (n.timeout_s = Number(timeout.value)))));
    setPanel(
      el("h2", { text: node.label || node.id }),
      el("p", { class: "muted", text: `${t.name} (${node.type})${t.description ? " — " + t.description : ""}` }),
      el("ul", { class: "errorlist", "data-role": "node-errors" }),
      el("div", { class: "wf-field" }, el("label", { for: "wf-id", text: "Node id" }), idInput, el("p", { class: "help", text: "Templates refer to it: {{" + node.id + ".field}}." })),
      el("div", { class: "wf-field" }, el("label", { for: "wf-label", text: "Label" }), labelInput),
      el("h3", { text: "Inputs" }),
      Object.keys(props).length ? Object.entries(props).map(([k, p]) => inputField(node, k, p, required.has(k))) : el("p", { class: "muted", text: "This node has no inputs." }),
      el("details", {}, el("summary", { text: "Errors and timeout" }), el("div", { class: "wf-field" }, el("label", { for: "wf-on-error", text: "On error" }), onError), el("div", { class: "wf-field" }, el("label", { for: "wf-timeout", text: "Timeout (s)" }), timeout)),
      pinSection(node),
      runSection(node),
    );
    showErrorsInPanel();
  }
  function workflowPanel() {
    delete panel.dataset.node;
    const input = el("textarea", { id: "wf-test-input", rows: 4, class: "mono", spellcheck: "false", "aria-label": "Test input (JSON)" });
    input.value = json(testInput || {});
    input.addEventListener("change", () => {
      try {
        testInput = JSON.parse(input.value || "{}");
        input.setCustomValidity("");
      } catch (e) {
        input.setCustomValidity("Not JSON");
      }
    });
    const problems = errors.map((e) => el("li", {}, el("a", { href: "#", text: `${e.node_id || "graph"} · ${e.field}: ${e.message}`, onclick: (ev) => {
      ev.preventDefault();
      if (e.node_id && nodeById(e.node_id)) {
        selection = new Set([e.node_id]);
        markSelection();
        showPanel();
      }
    } })));
    const summary = lastRun
      ? el("p", {}, "Last run: ", el("span", { class: `status status-${lastRun.status}`, "data-testid": "test-status", text: lastRun.status }), " · ", el("a", { href: `${cfg.runs_page}${lastRun.id}/`, text: "open the run" }))
      : null;
    setPanel(
      el("h2", { text: cfg.workflow.name }),
      el("p", { class: "muted", text: `${graph.nodes.length} nodes, ${graph.edges.length} edges. Select a node to edit it.` }),
      errors.length ? el("div", {}, el("h3", { text: "Problems" }), el("ul", { class: "errorlist", "data-testid": "problems" }, problems)) : el("p", { class: "ok", text: "No problems found." }),
      el("label", { for: "wf-test-input", text: "Test input (JSON)" }),
      input,
      summary,
    );
  }
  function showPanel() {
    if (panel.dataset.mode && panel.dataset.mode !== "node") return;
    if (selection.size === 1) nodePanel(nodeById([...selection][0]));
    else if (selection.size > 1) {
      delete panel.dataset.node;
      setPanel(el("h2", { text: `${selection.size} nodes selected` }), el("p", { class: "muted", text: "Ctrl+C copies them (paste into this or another workflow with Ctrl+V); Delete removes them." }));
    } else workflowPanel();
  }
  function setMode(mode) {
    panel.dataset.mode = mode || "node";
    if (!mode) showPanel();
  }

  // ---------------------------------------------------------------- test runs
  const rt = window.JetRealtime ? window.JetRealtime.connect() : null;
  const stopBtn = root.querySelector("[data-action=stop]");
  const testBtn = root.querySelector("[data-action=test]");
  async function testRun(runGraph) {
    setMode(null);
    graph.nodes.forEach((n) => setStatus(n.id, n.pinned ? "queued" : "pending"));
    const res = await call("POST", `${api}test/`, { graph: runGraph || graph, input: testInput || {}, workflow: wid });
    if (!res.ok) {
      const details = res.data && res.data.error && res.data.error.details;
      if (details && Array.isArray(details.graph)) {
        errors = details.graph;
        markErrors();
        showPanel();
      }
      say((res.data && res.data.error && res.data.error.message) || `Test run refused (HTTP ${res.status}).`, "error");
      return;
    }
    running = res.data.instance_id;
    lastRun = { id: running, status: "queued", nodes: {}, input: testInput };
    root.dataset.testRun = running;
    root.dataset.testStatus = "running";
    stopBtn.hidden = false;
    testBtn.disabled = true;
    say("Test run: running…", "");
    const done = async () => {
      const detail = await call("GET", `${api}instances/${running}/`);
      if (detail.ok) {
        lastRun = { id: detail.data.id, status: detail.data.status, nodes: detail.data.nodes || {}, input: detail.data.input };
        Object.entries(lastRun.nodes).forEach(([id, n]) => setStatus(id, n.status));
      }
      say(`Test run ${lastRun.status}`, lastRun.status === "succeeded" ? "ok" : "error");
      running = null;
      stopBtn.hidden = true;
      testBtn.disabled = false;
      root.dataset.testStatus = lastRun.status;
      showPanel();
    };
    if (!rt) return setTimeout(done, 1000);
    let finished = false;
    rt.joinRun(running, (event, data) => {
      if (event === "workflow_node_update" && !data.iteration && data.node_id) setStatus(data.node_id, data.status);
      if ((event === "workflow_status_update" || event === "workflow_run_joined") && TERMINAL.includes(data.status) && !finished) {
        finished = true;
        done();
      }
    });
  }
  function rerunFrom(nodeId) {
    const ups = upstream(nodeId);
    const runGraph = JSON.parse(JSON.stringify(graph));
    runGraph.nodes.forEach((n) => {
      const r = lastRun.nodes[n.id];
      if (ups.has(n.id) && r && r.status === "succeeded") n.pinned = { output: r.output, ...(r.route ? { route: r.route } : {}) };
    });
    testRun(runGraph);
  }

  // ---------------------------------------------------------------- versions and tests panels
  async function versionsPanel() {
    setMode("versions");
    const res = await call("GET", `${api}${wid}/versions/?page_size=50`);
    const rows = (res.data && (res.data.results || res.data)) || [];
    const list = el("table", { "data-testid": "versions", class: "wf-versions" }, el("thead", {}, el("tr", {}, el("th", { text: "A" }), el("th", { text: "B" }), el("th", { text: "Version" }), el("th", {}))));
    const body = el("tbody");
    rows.forEach((v, i) => {
      body.append(el("tr", { "data-version": v.version },
        el("td", {}, el("input", { type: "radio", name: "wf-a", value: v.version, checked: i === 1, "aria-label": `Compare from version ${v.version}` })),
        el("td", {}, el("input", { type: "radio", name: "wf-b", value: v.version, checked: i === 0, "aria-label": `Compare to version ${v.version}` })),
        el("td", {},
          el("strong", { text: `v${v.version}` }), v.version === cfg.version ? el("span", { class: "badge", text: "current" }) : null,
          el("div", { class: "muted" }, `${(v.created_by && v.created_by.username) || "—"} · `,
            el("time", { datetime: v.created_at, title: v.created_at, text: new Date(v.created_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) }))),
        el("td", {}, canEdit && v.version !== cfg.version ? el("button", { type: "button", class: "link", text: "Restore", onclick: () => restore(v.version) }) : null),
      ));
    });
    list.append(body);
    const out = el("div", { "data-testid": "diff" });
    setPanel(
      el("h2", { text: "Versions" }),
      list,
      el("div", { class: "form-actions" }, el("button", { type: "button", class: "secondary", text: "Compare", onclick: () => compare(out) }), el("button", { type: "button", class: "link", text: "Close", onclick: () => { diffMarks = {}; markDiff(); setMode(null); } })),
      out,
    );
  }
  async function compare(out) {
    const a = panel.querySelector("input[name=wf-a]:checked");
    const b = panel.querySelector("input[name=wf-b]:checked");
    if (!a || !b) return;
    const res = await call("GET", `${api}${wid}/versions/diff/?a=${a.value}&b=${b.value}`);
    if (!res.ok) return out.replaceChildren(el("p", { class: "error", text: (res.data && res.data.error && res.data.error.message) || "Cannot compare." }));
    const d = res.data;
    diffMarks = {};
    if (Number(b.value) === cfg.version) {
      d.nodes.added.forEach((id) => (diffMarks[id] = "added"));
      d.nodes.changed.forEach((c) => (diffMarks[c.id] = "changed"));
      d.nodes.moved.forEach((id) => (diffMarks[id] = "moved"));
    }
    markDiff();
    const item = (cls, text) => el("li", { class: cls, text });
    fill(
      out,
      el("h3", { text: `v${d.a} → v${d.b}` }),
      el("ul", { class: "wf-diff" },
        d.nodes.added.map((id) => item("added", `+ node ${id}`)),
        d.nodes.removed.map((id) => item("removed", `− node ${id}`)),
        d.nodes.changed.map((c) => item("changed", `~ node ${c.id}: ${c.fields.join(", ")}`)),
        d.nodes.moved.map((id) => item("moved", `↔ node ${id} moved`)),
        d.edges.added.map((e) => item("added", `+ edge ${e.source} → ${e.target}${e.sourceHandle ? " (" + e.sourceHandle + ")" : ""}`)),
        d.edges.removed.map((e) => item("removed", `− edge ${e.source} → ${e.target}${e.sourceHandle ? " (" + e.sourceHandle + ")" : ""}`)),
        d.notes_changed ? item("changed", "~ notes") : null,
      ),
      !d.nodes.added.length && !d.nodes.removed.length && !d.nodes.changed.length && !d.edges.added.length && !d.edges.removed.length && !d.nodes.moved.length && !d.notes_changed ? el("p", { class: "muted", text: "No differences." }) : null,
    );
  }
  async function restore(version) {
    if (JSON.stringify(graph) !== saved && !window.confirm("Discard the unsaved changes and restore?")) return;
    if (!window.confirm(`Make version ${version} current again (saved as a new version)?`)) return;
    const res = await call("POST", `${api}${wid}/versions/${version}/restore/`);
    if (!res.ok) return say((res.data && res.data.error && res.data.error.message) || "Not restored.", "error");
    graph = layoutMissing(normalize(res.data.graph));
    saved = JSON.stringify(graph);
    cfg.version = res.data.version;
    past.push(JSON.stringify(graph));
    render();
    fit();
    dirty();
    say(`Restored version ${version} as version ${res.data.version}`, "ok");
    showVersion();
    versionsPanel();
  }
  function resultView(result) {
    if (!result) return el("span", { class: "muted", text: "not run yet" });
    return el("div", { class: "wf-case-result" },
      el("span", { class: `status status-${result.passed ? "succeeded" : "failed"}`, "data-role": "verdict", text: result.passed ? "passed" : "failed" }),
      " ", el("a", { href: `${cfg.runs_page}${result.instance_id}/`, text: "run" }),
      result.failures.map((f) => el("div", {}, el("strong", { text: f.where }), el("pre", { class: "wf-json", "data-role": "diff", text: f.diff }))),
    );
  }
  async function testsPanel() {
    setMode("tests");
    const res = await call("GET", `${api}${wid}/tests/?page_size=100`);
    const cases = (res.data && (res.data.results || res.data)) || [];
    const list = el("ul", { class: "wf-cases", "data-testid": "test-cases" });
    cases.forEach((c) => {
      const slot = el("div", {}, resultView(c.last_result));
      const run = el("button", { type: "button", class: "secondary", text: "Run", onclick: async () => {
        run.disabled = true;
        slot.replaceChildren(el("span", { class: "muted", text: "running…" }));
        const r = await call("POST", `${api}${wid}/tests/${c.id}/run/`, {});
        run.disabled = false;
        slot.replaceChildren(r.ok ? resultView(r.data) : el("p", { class: "error", text: (r.data && r.data.error && r.data.error.message) || "Could not run." }));
      } });
      list.append(el("li", { "data-case": c.name }, el("strong", { text: c.name }), " ", canEdit ? run : null, slot));
    });
    const name = el("input", { id: "wf-case-name", placeholder: "Case name", "aria-label": "Case name" });
    const add = el("button", { type: "button", class: "secondary", text: "Save the last test run as a case", disabled: !lastRun || !TERMINAL.includes(lastRun.status), onclick: async () => {
      const pinned = {};
      graph.nodes.filter((n) => n.pinned).forEach((n) => (pinned[n.id] = n.pinned.output));
      const detail = await call("GET", `${api}instances/${lastRun.id}/`);
      const expect = { status: lastRun.status };
      if (detail.ok && lastRun.status === "succeeded") expect.output = detail.data.output;
      const r = await call("POST", `${api}${wid}/tests/`, { name: name.value.trim(), input: testInput || {}, pinned, expect });
      if (r.ok) testsPanel();
      else add.after(el("ul", { class: "errorlist" }, el("li", { text: (r.data && r.data.error && r.data.error.message) || "Not saved." })));
    } });
    setPanel(
      el("h2", { text: "Tests" }),
      el("p", { class: "muted", text: "Each case runs the saved version with its input, its pinned nodes not executed, and checks the result. manage.py test_workflows runs them all." }),
      cases.length ? list : el("p", { class: "muted", text: "No test cases yet." }),
      canEdit ? el("div", {}, el("label", { for: "wf-case-name", text: "New case from the last test run (input, pins, output)" }), name, add) : null,
      el("div", { class: "form-actions" }, el("button", { type: "button", class: "link", text: "Close", onclick: () => setMode(null) })),
    );
  }

  // ---------------------------------------------------------------- toolbar and start
  const actions = {
    save,
    undo,
    redo,
    note: addNote,
    tidy,
    fit,
    "zoom-in": () => editor.zoom_in(),
    "zoom-out": () => editor.zoom_out(),
    test: () => {
      const input = panel.querySelector("#wf-test-input");
      if (input) {
        try {
          testInput = JSON.parse(input.value || "{}");
        } catch (e) {
          return say("The test input is not JSON.", "error");
        }
      }
      testRun();
    },
    stop: async () => {
      if (running) await call("DELETE", `${api}instances/${running}/stop/`);
    },
    versions: versionsPanel,
    tests: testsPanel,
  };
  root.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => actions[b.dataset.action]()));
  buildPalette();
  render();
  requestAnimationFrame(fit);
  dirty();
  validate();
  showPanel();
  window.JetEditor = { editor, get graph() { return graph; }, fit, render, setView };
})();
