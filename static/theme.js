/* labnb: light or dark colours. A page follows the system's (prefers-color-scheme) until the learner
 * chooses with the header's switch (templates/_theme.html); the choice is kept in localStorage, for every
 * tab, and forgotten once it is the system's own again. Loaded in <head>, before the page is drawn, so that
 * a dark page does not flash light. The colours are CSS custom properties (static/labnb.css, :root and
 * :root[data-theme="dark"]); what draws with colours of its own (the terminal, the network picture) reads
 * them and hears of a change by the "labnb-theme" event on document. */
(function () {
  "use strict";
  var KEY = "labnb.theme";
  var root = document.documentElement;
  var system = window.matchMedia("(prefers-color-scheme: dark)");
  var choice = "";   // "dark", "light", or "": the system's

  function read() {
    try { choice = localStorage.getItem(KEY) || ""; } catch (e) { /* storage off: this page's choice only */ }
  }

  function systemTheme() { return system.matches ? "dark" : "light"; }

  function showSwitches(theme) {
    document.querySelectorAll(".theme-toggle").forEach(function (b) {
      b.setAttribute("aria-pressed", String(theme === "dark"));
    });
  }

  function apply() {
    var theme = choice || systemTheme();
    showSwitches(theme);
    if (root.dataset.theme === theme) return;
    root.dataset.theme = theme;
    document.dispatchEvent(new CustomEvent("labnb-theme", { detail: { theme: theme } }));
  }

  function choose(theme) {
    choice = theme === systemTheme() ? "" : theme;
    try {
      if (choice) localStorage.setItem(KEY, choice); else localStorage.removeItem(KEY);
    } catch (e) { /* storage off */ }
    apply();
  }

  read();
  apply();
  system.addEventListener("change", apply);
  window.addEventListener("storage", function (e) { if (e.key === KEY) { read(); apply(); } });   // another tab's
  document.addEventListener("DOMContentLoaded", apply);   // the switches are there now
  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest(".theme-toggle")) choose(root.dataset.theme === "dark" ? "light" : "dark");
  });
})();
