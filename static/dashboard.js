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

  function ago(seconds) {
    if (seconds < 60) return Math.round(seconds) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function post(url, body) {
    return fetch(url, { method: "POST", headers: { "X-CSRF-Token": csrf }, body: body || new FormData() })
      .then(function (r) { return r.json(); })
      .then(function (reply) { if (reply.error) alert(reply.error); });
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
    var select = el("select", { "class": "catch-up", title: "Run this learner's steps before the one chosen" });
    select.appendChild(el("option", { value: "" }, "Catch up to…"));
    labs.forEach(function (lab) {
      lab.steps.forEach(function (step, i) {
        if (i > 0) select.appendChild(el("option", { value: lab.id + "\n" + step.id }, (i + 1) + ". " + step.title));
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
    return select;
  }

  function drawHead(labs) {
    var head = main.querySelector("#grid thead");
    var row = el("tr");
    ["Learner", "Step now", "Idle", "Time left", "Lab host"].forEach(function (h) { row.appendChild(el("th", {}, h)); });
    labs.forEach(function (lab) {
      lab.steps.forEach(function (step, i) {
        row.appendChild(el("th", { title: lab.title + ": " + step.title, "class": "step-head" }, i + 1));
      });
    });
    row.appendChild(el("th", {}, ""));
    head.replaceChildren(row);
  }

  function stepTitle(labs, current) {
    if (!current) return "";
    for (var i = 0; i < labs.length; i++) {
      if (labs[i].id !== current.lab) continue;
      for (var j = 0; j < labs[i].steps.length; j++) {
        if (labs[i].steps[j].id === current.step) return (j + 1) + ". " + labs[i].steps[j].title;
      }
    }
    return current.step;
  }

  var held = null;   // a state that came while the instructor had a row's menu open: drawn when it closes

  function draw(state) {
    var focused = document.activeElement;
    if (focused && focused.matches && focused.matches("#grid select")) { held = state; return; }
    var w = state.workshop, labs = w.labs;
    document.getElementById("counts").textContent = w.over ? "The workshop is over." :
      w.seated + " of " + w.capacity + " places taken, " + w.waiting + " waiting";
    var shown = document.getElementById("current-banner");
    shown.hidden = !w.banner;
    if (w.banner) shown.querySelector(".text").textContent = w.banner.text;
    drawHead(labs);
    var body = main.querySelector("#grid tbody"), rows = [], hands = [], queue = [];
    var rank = { seated: 0, waiting: 1, ended: 2 };   // the room first, those who left at the bottom
    state.learners.slice().sort(function (a, b) { return rank[a.place] - rank[b.place]; }).forEach(function (l) {
      if (l.place === "waiting") { queue.push(l); return; }
      if (l.hand) hands.push(l);
      var row = el("tr", { "data-learner": l.id, "data-place": l.place, "class": l.hand ? "has-hand" : "" });
      var name = el("td", { "class": "name" }, l.hand ? "✋ " : "");
      var lab = l.current ? l.current.lab : labs.length ? labs[0].id : "";
      name.appendChild(el("a", { href: "/workshop/learners/" + encodeURIComponent(l.id) + "/labs/" +
                                       encodeURIComponent(lab), target: "_blank",
                                title: "Watch (read-only); joined from " + (l.address || "?") }, l.name));
      if (l.place === "ended") name.appendChild(el("span", { "class": "meta", title: l.ended_because || "" }, " (ended)"));
      row.appendChild(name);
      var current = el("td", { "class": "current" }, stepTitle(labs, l.current));
      if (l.catch_up && l.catch_up.state !== "done") {
        current.appendChild(el("div", { "class": "catching", "data-state": l.catch_up.state },
          l.catch_up.state === "running" ? "catching up: " + stepTitle(labs, { lab: l.catch_up.lab, step: l.catch_up.step })
                                         : "catch-up failed: " + l.catch_up.error));
      }
      row.appendChild(current);
      row.appendChild(el("td", { "class": "idle" }, l.running ? "running" : ago(l.idle_s)));
      var left = l.time_left_s === null || l.time_left_s === undefined ? "" : ago(l.time_left_s);
      var early = l.ends_because && l.ends_because !== "time" ? " (" + l.ends_because + " in " + ago(l.ends_in_s) + ")" : "";
      row.appendChild(el("td", { "class": "left", "data-why": l.ends_because || "" }, left + early));
      var host = l.host ? l.host.state : "";
      row.appendChild(el("td", { "class": "host", "data-state": host, title: l.host && l.host.error || "" }, host));
      labs.forEach(function (lab) {
        lab.steps.forEach(function (step) {
          var s = (l.steps[lab.id] || {})[step.id] || { state: "not_started" };
          row.appendChild(el("td", { "class": "cell-state", "data-state": s.state, "data-step": step.id,
                                     title: step.title + ": " + s.state.replace("_", " ") }, STATE_MARK[s.state]));
        });
      });
      var acts = el("td", { "class": "actions" });
      if (l.place === "seated") {
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
      }
      row.appendChild(acts);
      rows.push(row);
    });
    body.replaceChildren.apply(body, rows);
    hands.sort(function (a, b) { return a.hand.raised - b.hand.raised; });
    document.getElementById("hand-count").textContent = hands.length ? "(" + hands.length + ")" : "";
    document.getElementById("hands").replaceChildren.apply(document.getElementById("hands"), hands.map(function (l) {
      var item = el("li", { "data-learner": l.id, "data-seen": l.hand.seen ? "yes" : "no" });
      item.appendChild(el("strong", {}, l.name));
      item.appendChild(el("span", { "class": "meta" }, " " + ago(w.now - l.hand.raised) + " ago "));
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

  document.getElementById("broadcast").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var form = ev.target;
    post("/workshop/broadcast", new FormData(form)).then(function () { form.reset(); });
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
