// The app shell's small behaviours: the tenant switcher closes on Escape or a click elsewhere, and a
// form control with data-confirm asks before it submits.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.switcher[open]").forEach(function (d) {
      if (!d.contains(event.target)) d.removeAttribute("open");
    });
    var ask = event.target.closest("[data-confirm]");
    if (ask && !window.confirm(ask.getAttribute("data-confirm"))) event.preventDefault();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details.switcher[open]").forEach(function (d) { d.removeAttribute("open"); });
    }
  });
})();
// A table row with data-href opens its detail page (the row's own links keep working).
document.addEventListener("click", function (event) {
  var row = event.target.closest("tr[data-href]");
  if (row && !event.target.closest("a, button, input, label")) window.location.href = row.getAttribute("data-href");
});
// Exact times on hover in the viewer's own time zone (the server writes ISO 8601 in datetime=).
function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) el.title = when.toLocaleString();
  });
}
document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
document.addEventListener("htmx:afterSwap", function (event) { localTimes(event.detail.target); });
