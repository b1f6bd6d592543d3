/* labnb: the instructor's dashboard. The server pushes the workshop's state
 * (the same JSON as GET /api/workshop) on every change; this draws it. Every
 * learner-given text goes in as textContent, never as HTML. */
(function () {
  "use strict";
  var main = document.getElementById("dashboard");
  var csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
  var banner = document.getElementById("banner");
  var STATE_MARK = { not_started: "·", running: "▶", passed: "✓", failed: "✗" };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* A span of time as a person reads it: "40 s", "12 min", "3 h 50 min" (whole units, never rounded up). */
  function span(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60);
    return h ? h + " h" + (m ? " " + m + " min" : "") : m + " min";
  }

  var EARLY = { idle: "away: place ends in ", gone: "no tab open: place ends in " };

  /* The learner's notebook, read-only, scrolled to a step of it (the section's id in templates/lab.html). */
  function watchUrl(l, at) {
    return "/workshop/learners/" + encodeURIComponent(l.id) + "/labs/" + encodeURIComponent(at.lab) +
           (at.step ? "#step-" + encodeURIComponent(at.step) : "");
  }

  function post(url, body) {
    return fetch(url, { method: "POST", headers: { "X-CSRF-Token": csrf }, body: body || new FormData() })
      .then(function (r) { return r.json(); })
      .then(function (reply) { if (reply.error) alert(reply.error); return reply; });
  }

  function actOn(id, action) {
    return post("/workshop/learners/" + encodeURIComponent(id) + "/" + action);
  }

  function button(label, cls, onclick) {
    var b = el("button", { type: "button", "class": cls }, label);
    b.addEventListener("click", onclick);
    return b;
  }

  /* "Catch up to step N": the server runs the learner's steps before N that have not passed. */
  function catchUp(l, labs) {
    var id = "catch-up-" + l.id;
    var label = el("label", { "for": id, "class": "sr-only" }, "Catch " + l.name + " up to a step");
    var select = el("select", { id: id, "class": "catch-up", title: "Run this learner's steps before the one chosen" });
    select.appendChild(el("option", { value: "" }, "Catch up to…"));
    labs.forEach(function (lab) {
      var group = labs.length > 1 ? select.appendChild(el("optgroup", { label: lab.title })) : select;
      lab.steps.forEach(function (step, i) {
        if (i > 0) group.appendChild(el("option", { value: lab.id + "\n" + step.id }, (i + 1) + ". " + step.title));
      });
    });
    select.disabled = !!(l.catch_up && l.catch_up.state === "running");
    select.addEventListener("change", function () {
      var parts = select.value.split("\n");
      if (select.value && confirm("Run " + l.name + "'s steps before this one?")) {
        var body = new FormData();
        body.append("lab", parts[0]);
        body.append("step", parts[1]);
        post("/workshop/learners/" + encodeURIComponent(l.id) + "/catch-up", body);
      }
      select.value = "";
    });
    var both = document.createDocumentFragment();
    both.appendChild(label);
    both.appendChild(select);
    return both;
  }

  var FACTS = ["Step now", "Last failed check", "Idle", "Time left", "Lab host"];

  /* Two header rows: each lab's title over its steps, then the steps (a number to see, the title to hear),
   * the learner's name and actions spanning both; a column group per lab. */
  function drawHead(labs) {
    var table = document.getElementById("grid"), head = table.querySelector("thead");
    table.querySelectorAll("colgroup").forEach(function (g) { g.remove(); });
    var groups = [el("colgroup", { span: 1 + FACTS.length })];
    var top = el("tr"), steps = el("tr");
    top.appendChild(el("th", { rowspan: 2, scope: "col", "class": "name" }, "Learner"));
    FACTS.forEach(function (h) { top.appendChild(el("th", { rowspan: 2, scope: "col" }, h)); });
    labs.forEach(function (lab) {
      if (!lab.steps.length) return;
      groups.push(el("colgroup", { span: lab.steps.length, "class": "lab" }));
      var title = el("th", { colspan: lab.steps.length, scope: "colgroup", "class": "lab-head", "data-lab": lab.id });
      title.appendChild(el("span", {}, lab.title));   // sticky: in view while any of its steps is
      top.appendChild(title);
      lab.steps.forEach(function (step, i) {
        var th = el("th", { scope: "col", title: lab.title + ": " + (i + 1) + ". " + step.title,
                            "class": "step-head" + (i ? "" : " lab-start") });
        th.appendChild(el("span", { "aria-hidden": "true" }, i + 1));
        th.appendChild(el("span", { "class": "sr-only" }, (i + 1) + ". " + step.title));
        steps.appendChild(th);
      });
    });
    groups.push(el("colgroup", { span: 1 }));
    top.appendChild(el("th", { rowspan: 2, scope: "col", "class": "actions" }, "Actions"));
    groups.forEach(function (g) { table.insertBefore(g, head); });
    head.replaceChildren.apply(head, steps.children.length ? [top, steps] : [top]);
  }

  /* "3. Title" of a step ({lab, step}), after its lab's title when the workshop has several labs. */
  function stepTitle(labs, at) {
    if (!at) return "";
    var lab = labs.filter(function (x) { return x.id === at.lab; })[0];
    var i = lab ? lab.steps.map(function (s) { return s.id; }).indexOf(at.step) : -1;
    if (i < 0) return at.step;
    return (labs.length > 1 ? lab.title + ": " : "") + (i + 1) + ". " + lab.steps[i].title;
  }

  function nameCell(l, labs) {
    var name = el("td", { "class": "name" });
    if (l.hand) {
      name.appendChild(el("span", { "class": "hand-mark", "aria-hidden": "true", title: "Hand raised" }, "✋ "));
      name.appendChild(el("span", { "class": "sr-only" }, "Hand raised: "));
    }
    var at = l.current || { lab: labs.length ? labs[0].id : "" };
    name.appendChild(el("a", { href: watchUrl(l, at), target: "_blank", "class": "watch",
                               title: "Watch at their current step (read-only); joined from " + (l.address || "?") },
                        l.name));
    if (l.place === "ended") name.appendChild(el("span", { "class": "meta", title: l.ended_because || "" }, " (ended)"));
    return name;
  }

  function currentCell(l, labs) {
    var current = el("td", { "class": "current" }, stepTitle(labs, l.current));
    if (l.catch_up && l.catch_up.state !== "done") {
      current.appendChild(el("div", { "class": "catching", "data-state": l.catch_up.state },
        l.catch_up.state === "running" ? "catching up: " + stepTitle(labs, { lab: l.catch_up.lab, step: l.catch_up.step })
                                       : "catch-up failed: " + l.catch_up.error));
    }
    return current;
  }

  /* The step that fails now and why (its check's hint), a link to it in the learner's notebook. */
  function failingCell(l, labs) {
    var cell = el("td", { "class": "failing" });
    if (!l.failing) return cell;
    cell.appendChild(el("a", { href: watchUrl(l, l.failing), target: "_blank",
                               title: "Watch " + l.name + " at this step (read-only)" }, stepTitle(labs, l.failing)));
    cell.appendChild(el("div", { "class": "why" }, l.failing.why));
    return cell;
  }

  function timeLeftCell(l) {
    var left = el("td", { "class": "left" }, l.time_left_s === null || l.time_left_s === undefined ? "" :
                                             span(l.time_left_s));
    if (l.early_end) {
      left.appendChild(el("div", { "class": "early", "data-why": l.early_end.why },
                          EARLY[l.early_end.why] + span(l.early_end.in_s)));
    }
    return left;
  }

  function actionsCell(l, labs) {
    var acts = el("td", { "class": "actions" });
    if (l.place !== "seated") return acts;
    acts.appendChild(button("Reset lab host", "reset", function () {
      if (confirm("Give " + l.name + " a fresh lab host? Their running commands stop.")) actOn(l.id, "reset");
    }));
    acts.appendChild(catchUp(l, labs));
    acts.appendChild(button("+15 min", "extend", function () {
      var body = new FormData();
      body.append("minutes", "15");
      post("/workshop/learners/" + encodeURIComponent(l.id) + "/extend", body);
    }));
    acts.appendChild(button("End", "end", function () {
      if (confirm("End " + l.name + "'s place? Their lab host is removed, their notebook kept.")) actOn(l.id, "end");
    }));
    return acts;
  }

  function drawRow(l, labs) {
    var row = el("tr", { "data-learner": l.id, "data-place": l.place, "class": l.hand ? "has-hand" : "" });
    row.appendChild(nameCell(l, labs));
    row.appendChild(currentCell(l, labs));
    row.appendChild(failingCell(l, labs));
    row.appendChild(el("td", { "class": "idle" }, l.running ? "running" : span(l.idle_s)));
    row.appendChild(timeLeftCell(l));
    var host = l.host ? l.host.state : "";
    row.appendChild(el("td", { "class": "lab-host", "data-state": host, title: l.host && l.host.error || "" }, host));
    labs.forEach(function (lab) {
      lab.steps.forEach(function (step, i) {
        var s = (l.steps[lab.id] || {})[step.id] || { state: "not_started" };
        row.appendChild(el("td", { "class": "cell-state" + (i ? "" : " lab-start"), "data-state": s.state,
                                   "data-step": step.id, title: step.title + ": " + s.state.replace("_", " ") },
                           STATE_MARK[s.state]));
      });
    });
    row.appendChild(actionsCell(l, labs));
    return row;
  }

  /* What has the keyboard focus in the grid, to give it back after a redraw (every few seconds): the
   * learner's row, the cell, which of the cell's controls. */
  function focusIn(grid) {
    var focused = document.activeElement, cell = focused && focused.closest && focused.closest("#grid td");
    if (!cell || !grid.contains(cell)) return null;
    return { learner: cell.parentNode.dataset.learner, cell: cell.className.split(" ")[0],
             index: Array.prototype.indexOf.call(cell.querySelectorAll("a, button, select"), focused) };
  }

  function refocus(grid, was) {
    if (!was) return;
    grid.querySelectorAll("tr[data-learner]").forEach(function (row) {
      if (row.dataset.learner !== was.learner) return;
      var cell = row.querySelector("td." + was.cell), controls = cell ? cell.querySelectorAll("a, button, select") : [];
      if (controls[was.index]) controls[was.index].focus({ preventScroll: true });
    });
  }

  var held = null;   // a state that came while the instructor had a row's menu open: drawn when it closes

  function draw(state) {
    var focused = document.activeElement;
    if (focused && focused.matches && focused.matches("#grid select")) { held = state; return; }
    var w = state.workshop, labs = w.labs, grid = document.getElementById("grid");
    document.getElementById("counts").textContent = w.over ? "The workshop is over." :
      w.seated + " of " + w.capacity + " places taken, " + w.waiting + " waiting";
    var shown = document.getElementById("current-banner");
    shown.hidden = !w.banner;
    if (w.banner) shown.querySelector(".text").textContent = w.banner.text;
    var was = focusIn(grid);
    drawHead(labs);
    var body = grid.querySelector("tbody"), rows = [], hands = [], queue = [];
    var rank = { seated: 0, waiting: 1, ended: 2 };   // the room first, those who left at the bottom
    state.learners.slice().sort(function (a, b) { return rank[a.place] - rank[b.place]; }).forEach(function (l) {
      if (l.place === "waiting") { queue.push(l); return; }
      if (l.hand) hands.push(l);
      rows.push(drawRow(l, labs));
    });
    body.replaceChildren.apply(body, rows);
    refocus(grid, was);
    grid.style.setProperty("--names-width", grid.querySelector("thead th.name").offsetWidth + "px");
    hands.sort(function (a, b) { return a.hand.raised - b.hand.raised; });
    document.getElementById("hand-count").textContent = hands.length ? "(" + hands.length + ")" : "";
    document.getElementById("hands").replaceChildren.apply(document.getElementById("hands"), hands.map(function (l) {
      var item = el("li", { "data-learner": l.id, "data-seen": l.hand.seen ? "yes" : "no" });
      item.appendChild(el("strong", {}, l.name));
      item.appendChild(el("span", { "class": "meta" }, " " + span(w.now - l.hand.raised) + " ago "));
      if (l.hand.message) item.appendChild(el("span", { "class": "message" }, l.hand.message));
      if (!l.hand.seen) item.appendChild(button("Seen", "seen", function () { actOn(l.id, "hand-seen"); }));
      item.appendChild(button("Resolved", "resolve", function () { actOn(l.id, "hand-resolve"); }));
      return item;
    }));
    queue.sort(function (a, b) { return a.position - b.position; });
    document.getElementById("queue").replaceChildren.apply(document.getElementById("queue"), queue.map(function (l) {
      return el("li", { "data-learner": l.id }, l.name);
    }));
  }

  document.addEventListener("focusout", function (ev) {
    if (!held || !ev.target.matches || !ev.target.matches("#grid select")) return;
    var state = held;
    held = null;
    setTimeout(function () { draw(state); }, 0);
  });

  var broadcast = document.getElementById("broadcast");
  broadcast.addEventListener("submit", function (ev) {
    ev.preventDefault();
    post("/workshop/broadcast", new FormData(broadcast)).then(function (reply) { if (!reply.error) broadcast.reset(); });
  });
  // the banner is one paragraph (the server joins its lines): Enter sends it, as in a chat
  broadcast.elements.text.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      broadcast.requestSubmit();
    }
  });
  document.getElementById("clear-banner").addEventListener("click", function () { post("/workshop/banner/clear"); });
  document.getElementById("end-workshop").addEventListener("click", function () {
    if (confirm("End the workshop for everyone? Every lab host is removed; the notebooks are kept.")) {
      post("/workshop/end");
    }
  });

  function load() {
    fetch(main.dataset.api).then(function (r) { return r.json(); }).then(draw);
  }

  var socket = io({ transports: ["websocket"] });
  socket.on("workshop", draw);
  socket.on("connect", function () { banner.hidden = true; load(); });
  socket.on("disconnect", function () {
    banner.textContent = "The connection to the server was lost; reconnecting…";
    banner.hidden = false;
  });
})();
