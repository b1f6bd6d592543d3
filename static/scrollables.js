/* labnb: a block of the lab page that scrolls can be scrolled from the keyboard (WCAG 2.1.1, axe's
 * scrollable-region-focusable). A command, a sample, a table or a check's detail too wide for the column
 * takes the focus (tabindex=0, arrow keys scroll it) and says what it is, but only while it scrolls: a block
 * that fits adds no stop to the Tab order. Whether it scrolls changes with the page's width (a panel opened, a
 * phone turned), so each block is watched for its size; a check's detail, added later, is found as it
 * comes. A step's output, which scrolls down as it grows, is always focusable (templates/lab.html). */
(function () {
  "use strict";
  var main = document.getElementById("lab");
  if (!main || !window.ResizeObserver) return;
  var SCROLLS = "data-scrolls";   // set here: this block's tabindex, role and label are ours to take back

  function what(pre) {
    if (pre.tagName === "TABLE") return "Table";
    if (pre.closest(".command")) return "Command";
    if (pre.closest(".checks")) return "Check's detail";
    return "Text";
  }

  function update(pre) {
    var scrolls = pre.scrollWidth > pre.clientWidth + 1;
    if (scrolls === pre.hasAttribute(SCROLLS)) return;
    if (scrolls) {
      pre.setAttribute(SCROLLS, "");
      pre.tabIndex = 0;
      if (pre.tagName !== "TABLE") pre.setAttribute("role", "group");   // a table keeps its own role
      pre.setAttribute("aria-label", what(pre) + ", wider than the page: scroll it with the arrow keys");
    } else {
      ["tabindex", "role", "aria-label", SCROLLS].forEach(function (a) { pre.removeAttribute(a); });
    }
  }

  var sized = new ResizeObserver(function (entries) {
    entries.forEach(function (e) { update(e.target); });
  });

  function watch(root) {
    root.querySelectorAll("pre, table").forEach(function (pre) {   // a lab's table scrolls too (labnb.css)
      if (!pre.closest(".output")) sized.observe(pre);   // an output wraps its lines: it scrolls down only
    });
  }

  watch(main);
  // a check's detail comes with its list item; an output's own changes are not looked at (they are many)
  var added = new MutationObserver(function (changes) {
    changes.forEach(function (c) {
      c.addedNodes.forEach(function (node) { if (node.nodeType === 1) watch(node); });
    });
  });
  main.querySelectorAll(".checks").forEach(function (list) { added.observe(list, { childList: true }); });
})();
