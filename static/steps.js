/* The lab page's step list (a sidebar on wide screens, a menu to open on
 * narrow ones) and its end-of-lab summary: each step's state in a mark and
 * words, kept current.
 *
 * A step's state is what static/cells.js sets on its section (data-state:
 * not-run, running, queued, passed, failed, failed-expected) and tells in a
 * "labnb-step-state" event; the page starts with the latest run's, from the
 * server. A run recorded on an earlier lab host of the learner's (reset, or
 * given back) says nothing of this one: the server lists those steps in
 * #host-runs's data-earlier (templates/_earlier.html), refreshed with the
 * progress after each run and when the lab host changes, which this file
 * notices (labnb-host-changed). Titles come from the page's own markup;
 * nothing from the lab host becomes markup here. */
(function () {
  "use strict";
  var nav = document.querySelector(".step-list");
  if (!nav) return;
  var WORDS = JSON.parse(document.getElementById("lab").dataset.stepStates);   // state -> [mark, words] (views.py)
  var PASSED = { "passed": true, "failed-expected": true };
  var details = nav.querySelector("details");
  var items = new Map();   // step id -> its <li> in the list
  nav.querySelectorAll("li[data-step]").forEach(function (li) { items.set(li.dataset.step, li); });
  var earlier = new Set();
  var summary = document.getElementById("summary");

  function readEarlier() {
    var el = document.getElementById("host-runs");
    earlier = new Set(el && el.dataset.earlier ? el.dataset.earlier.split(" ") : []);
  }

  function stateOf(li) { return WORDS[li.dataset.state] ? li.dataset.state : "not-run"; }

  /* Whether the step has passed on this lab host; its words ("passed on an earlier lab host"). */
  function passed(li) { return PASSED[stateOf(li)] && !earlier.has(li.dataset.step); }
  function words(li) {
    var state = stateOf(li);
    var there = earlier.has(li.dataset.step) && (PASSED[state] || state === "failed");
    return WORDS[state][1] + (there ? " on an earlier lab host" : "");
  }

  function title(li) { return li.querySelector(".title").textContent; }

  function draw() {
    var done = 0, rest = [];
    items.forEach(function (li) {
      var state = stateOf(li);
      li.querySelector(".mark").textContent = WORDS[state][0];
      li.querySelector(".words").textContent = "(" + words(li) + ")";
      li.classList.toggle("earlier", earlier.has(li.dataset.step));
      var section = document.getElementById("step-" + li.dataset.step);   // its heading's mark, muted as here
      if (section) section.classList.toggle("earlier", earlier.has(li.dataset.step));
      if (passed(li)) done++; else rest.push(li);
    });
    var here = earlier.size ? " on this lab host" : "";
    nav.querySelector(".step-list-count").textContent = "(" + done + " of " + items.size + " passed)";
    if (!summary) return;
    summary.querySelector(".summary-count").textContent = rest.length
      ? done + " of " + items.size + " steps passed" + here + ". Still to do:"
      : "Every step passed" + here + ".";
    var list = summary.querySelector(".summary-steps");
    list.textContent = "";
    rest.forEach(function (li) {
      var item = document.createElement("li");
      item.dataset.step = li.dataset.step;
      var link = document.createElement("a");
      link.href = "#step-" + li.dataset.step;
      link.textContent = title(li);
      item.appendChild(link);
      var state = stateOf(li);
      item.appendChild(document.createTextNode(": " + (state === "not-run" ? "missing, not run" : words(li))));
      list.appendChild(item);
    });
    list.hidden = !rest.length;
  }

  /* The state cells.js set before this file loaded, and every change after. */
  items.forEach(function (li) {
    var section = document.getElementById("step-" + li.dataset.step);
    if (section && section.dataset.state) li.dataset.state = section.dataset.state;
  });
  document.addEventListener("labnb-step-state", function (e) {
    var li = e.detail && items.get(e.detail.step);
    if (!li || !WORDS[e.detail.state]) return;
    li.dataset.state = e.detail.state;
    if (e.detail.state !== "not-run") earlier.delete(e.detail.step);   // it runs on this lab host now
    draw();
  });

  /* The lab host changed (made afresh after a reset, given back): the progress is asked again, and with it
   * the steps run on an earlier one. */
  function hostKey() {
    var host = document.getElementById("host");
    return host ? host.dataset.state + " " + (host.dataset.host || "") : "";
  }
  var lastHost = hostKey();
  document.body.addEventListener("htmx:afterSettle", function () {
    readEarlier();
    draw();
    var key = hostKey();
    if (key === lastHost) return;
    lastHost = key;
    document.body.dispatchEvent(new CustomEvent("labnb-host-changed", { bubbles: true }));
  });

  /* Wide: the list stays open beside the steps; narrow: a menu, closed after a step is chosen. A chosen
   * step gets the focus, so that Shift+Enter runs it. */
  var wide = window.matchMedia("(min-width: 1100px)");   // static/labnb.css: the sidebar from 1100 px
  function fit() { details.open = wide.matches; }
  wide.addEventListener("change", fit);
  fit();
  nav.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a[href^='#step-']");
    if (!link) return;
    var section = document.getElementById(link.getAttribute("href").slice(1));
    if (section) section.focus({ preventScroll: true });
    if (!wide.matches) details.open = false;
  });
  if (summary) summary.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a[href^='#step-']");
    var section = link && document.getElementById(link.getAttribute("href").slice(1));
    if (section) section.focus({ preventScroll: true });
  });

  readEarlier();
  draw();
})();
