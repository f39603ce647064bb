// The theme: as the system (default), light or dark; the choice is kept in this browser. Loaded in
// <head> before the stylesheet so a dark page never flashes light.
(function () {
  "use strict";
  var KEY = "jetadmin.theme";
  var order = ["auto", "light", "dark"];
  function apply(theme) {
    if (theme === "light" || theme === "dark") document.documentElement.setAttribute("data-theme", theme);
    else document.documentElement.removeAttribute("data-theme");
    document.querySelectorAll("[data-theme-toggle]").forEach(function (b) { b.textContent = "Theme: " + theme; });
  }
  var saved = null;
  try { saved = window.localStorage.getItem(KEY); } catch (e) { /* storage off: follow the system */ }
  apply(saved || "auto");
  document.addEventListener("DOMContentLoaded", function () {
    apply(saved || "auto");
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        var next = order[(order.indexOf(saved || "auto") + 1) % order.length];
        saved = next;
        try { window.localStorage.setItem(KEY, next); } catch (e) { /* kept for this page only */ }
        apply(next);
      });
    });
  });
})();
