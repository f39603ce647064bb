// The query editor: CodeMirror on the body (SQL or JSON by the chosen datasource), Ctrl/Cmd+Enter runs,
// the schema browser inserts names, and the results grid pages and exports in the browser (a run is
// never repeated to page or export it). Values are only ever set as text, never as HTML.
(function () {
  "use strict";
  var form = document.getElementById("query-form");
  var textarea = document.getElementById("id_body");
  if (!form || !textarea || !window.CodeMirror) return;
  var languages = JSON.parse(document.getElementById("datasource-languages").textContent);
  var select = document.getElementById("id_datasource");
  var modes = { sql: "text/x-sql", json: { name: "javascript", json: true } };

  function run() {
    editor.save();
    var button = document.getElementById("run");
    if (button) button.click();
  }
  var editor = window.CodeMirror.fromTextArea(textarea, {
    mode: modes[textarea.getAttribute("data-language")] || modes.sql,
    lineNumbers: true,
    matchBrackets: true,
    indentUnit: 2,
    viewportMargin: 50,
    readOnly: textarea.disabled,
    extraKeys: { "Ctrl-Enter": run, "Cmd-Enter": run },
  });
  window.jetadminQueryEditor = editor;
  var timer = null;
  editor.on("change", function () {
    editor.save();
    clearTimeout(timer);
    timer = setTimeout(function () { window.htmx && window.htmx.trigger(textarea, "change"); }, 400);
  });
  select.addEventListener("change", function () {
    var language = languages[select.value] || "sql";
    editor.setOption("mode", modes[language]);
  });
  form.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); run(); }
  });
  form.addEventListener("submit", function () { editor.save(); });

  document.getElementById("schema").addEventListener("click", function (event) {
    var target = event.target.closest("[data-insert]");
    if (!target) return;
    event.preventDefault();
    editor.replaceSelection(target.getAttribute("data-insert"));
    editor.focus();
  });

  // --- results: paging and export ---------------------------------------------------------------
  function pager(results) {
    var table = results.querySelector("table[data-role=results]");
    var nav = results.querySelector("[data-role=pager]");
    if (!table || !nav) return;
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var size = parseInt(table.getAttribute("data-page-size"), 10) || 50;
    var pages = Math.max(1, Math.ceil(rows.length / size));
    var current = 1;
    function show(page) {
      current = Math.min(Math.max(page, 1), pages);
      rows.forEach(function (row, i) { row.hidden = Math.floor(i / size) + 1 !== current; });
      nav.textContent = "";
      if (pages === 1) return;
      var prev = document.createElement("button");
      prev.type = "button"; prev.className = "secondary"; prev.textContent = "← Previous"; prev.disabled = current === 1;
      prev.addEventListener("click", function () { show(current - 1); });
      var label = document.createElement("span");
      label.className = "muted"; label.setAttribute("data-role", "page-label");
      label.textContent = "Rows " + ((current - 1) * size + 1) + "–" + Math.min(current * size, rows.length) + " of " + rows.length;
      var next = document.createElement("button");
      next.type = "button"; next.className = "secondary"; next.textContent = "Next →"; next.disabled = current === pages;
      next.addEventListener("click", function () { show(current + 1); });
      nav.append(prev, label, next);
    }
    show(1);
  }

  function download(name, type, text) {
    var url = URL.createObjectURL(new Blob([text], { type: type }));
    var a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }
  function csvCell(value) {
    if (value === null || value === undefined) return "";
    var text = typeof value === "object" ? JSON.stringify(value) : String(value);
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function fileName(ext) {
    var name = (document.getElementById("id_name").value || "query").replace(/[^\w.-]+/g, "_");
    return name + "." + ext;
  }
  document.getElementById("results").addEventListener("click", function (event) {
    var button = event.target.closest("[data-export]");
    if (!button) return;
    var data = JSON.parse(document.getElementById("result-data").textContent);
    if (button.getAttribute("data-export") === "csv") {
      var lines = [data.columns.map(csvCell).join(",")].concat(
        data.rows.map(function (row) { return row.map(csvCell).join(","); }));
      download(fileName("csv"), "text/csv", lines.join("\r\n") + "\r\n");
    } else {
      var objects = data.rows.map(function (row) {
        var o = {}; data.columns.forEach(function (c, i) { o[c] = row[i]; }); return o;
      });
      download(fileName("json"), "application/json", JSON.stringify(objects, null, 2));
    }
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "results") pager(event.detail.target);
  });
})();
