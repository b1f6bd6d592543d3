/* labnb: the network picture beside the steps (templates/lab.html, #network). The server reads the lab
 * host and lays the picture out (webapp/network/); this draws it with Cytoscape.js at the server's
 * positions, so that it matches the SVG download. It asks only while the panel is open: after every run,
 * when the lab host changes, and on Refresh. Labels are drawn on a canvas: a learner's names are text.
 * Its Text view (static/network_text.js) shows the same JSON as tables, and needs no Cytoscape. */
(function () {
  "use strict";
  var panel = document.getElementById("network");
  if (!panel || !window.labnb) return;
  var screen = panel.querySelector(".network-screen");
  var text = panel.querySelector(".network-text");
  var views = panel.querySelectorAll(".network-view");
  var view = "picture";   // or "text"
  var info = panel.querySelector(".network-info");
  var notes = panel.querySelector(".network-notes");
  var toggle = document.querySelector(".network-toggle");
  var cy = null, asking = false, again = false;
  var api = window.labnb.network = { picture: null, cy: null, refresh: refresh };

  function label(iface) {
    var a = iface.addresses;
    var shown = a.slice(0, 2).join(", ") + (a.length > 2 ? " +" + (a.length - 2) : "");
    return iface.name + " (" + iface.kind + ")\n" + (shown || "no address") + "\n" + iface.state;
  }

  /* A set of hosts (docs/network.md): each host's boxes inside a group of its own, the lab network's box
   * above them; a one-host picture has no hosts. */
  function elements(pic) {
    var out = [], group = {};
    (pic.hosts || []).forEach(function (h) {
      group[h.name] = h.id;
      out.push({ group: "nodes", data: { id: h.id, label: h.label }, classes: "host" });
    });
    pic.namespaces.forEach(function (ns) {
      out.push({ group: "nodes", data: { id: ns.id, label: ns.label, kind: ns.kind, parent: group[ns.host] },
                 classes: "box" });
      ns.interfaces.forEach(function (i) {
        out.push({ group: "nodes", data: { id: i.id, parent: ns.id, label: label(i), state: i.state, iface: i },
                   position: { x: i.x, y: i.y }, classes: "iface" });
      });
    });
    pic.links.forEach(function (l, n) {
      out.push({ group: "edges", data: { id: "l" + n, source: l.source, target: l.target }, classes: l.kind });
    });
    return out;
  }

  /* The picture's colours are the page's (static/labnb.css, --net-*: light or dark), as its legend's. */
  function style() {
    var css = getComputedStyle(document.documentElement);
    function c(name) { return css.getPropertyValue("--net-" + name).trim(); }
    var state = { "UP": c("up"), "NO-CARRIER": c("no-carrier"), "DOWN": c("down") };
    var box = { "lab host": c("host"), "container": c("container"), "netns": c("netns"), "lab network": c("lab") };
    return [
      { selector: "node", style: { "color": c("text") } },
      { selector: "node.box", style: {
        "label": "data(label)", "text-valign": "top", "text-halign": "center", "text-margin-y": -4,
        "font-size": 12, "font-weight": "bold", "padding": 14, "shape": "round-rectangle",
        "background-color": function (n) { return box[n.data("kind")] || c("iface"); },
        "border-color": c("box-line"), "border-width": 1.5 } },
      { selector: "node.iface", style: {
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
        "font-family": "ui-monospace, DejaVu Sans Mono, monospace", "font-size": 11, "shape": "round-rectangle",
        "width": 180, "height": 58, "background-color": c("iface"), "border-width": 2,
        "border-color": function (n) { return state[n.data("state")] || state.DOWN; } } },
      { selector: "node.host", style: {
        "label": "data(label)", "text-valign": "top", "text-halign": "center", "text-margin-y": -4,
        "font-size": 14, "font-weight": "bold", "padding": 14, "shape": "round-rectangle",
        "background-opacity": 0, "border-color": c("veth"), "border-width": 2, "border-style": "dashed" } },
      { selector: "node.iface:selected", style: { "background-color": c("selected") } },
      { selector: "edge.lab", style: { "width": 3, "line-color": c("lab-line"), "curve-style": "straight" } },
      { selector: "edge.veth", style: { "width": 2, "line-color": c("veth"), "line-opacity": 0.7,
        "curve-style": "straight" } },
      { selector: "edge.port", style: { "width": 1.5, "line-color": c("port"), "line-style": "dashed",
        "curve-style": "unbundled-bezier", "control-point-distances": 40, "control-point-weights": 0.5 } }
    ];
  }

  function draw(pic) {
    api.picture = pic;
    pic.read = new Date();
    notes.textContent = pic.notes.join("; ");
    notes.hidden = !pic.notes.length;
    panel.querySelector(".legend-hosts").hidden = !pic.hosts;
    window.labnb.networkText.render(text, pic);
    if (view === "picture") drawPicture(pic); else describe(pic);
  }

  /* What the panel shows was read when: said once the view in front shows it (a picture once drawn). */
  function describe(pic) {
    info.textContent = pic.namespaces.length + " namespaces, read in " + pic.took_ms + " ms at " +
      pic.read.toLocaleTimeString() + (view === "picture" ? "; click an interface for its details" : "");
  }

  /* Cytoscape.js is loaded when a picture is first drawn; the Text view never needs it. */
  function drawPicture(pic) {
    window.labnb.need("cytoscape").then(function () { if (api.picture === pic) paint(pic); },
                                        function (err) { info.textContent = "The picture " + err.message; });
  }

  function paint(pic) {
    screen.setAttribute("aria-label", pic.hosts ? "A picture of the network of lab hosts " +
                        pic.hosts.map(function (h) { return h.name; }).join(", ") + " and the lab network between " +
                        "them, " + pic.namespaces.length + " boxes: Text lists them"
                        : "A picture of the lab host's network, " + pic.namespaces.length +
                        " namespaces: Text lists them");
    if (cy) cy.destroy();
    cy = api.cy = window.cytoscape({ container: screen, elements: elements(pic), style: style(),
                                     layout: { name: "preset" }, autoungrabify: true, boxSelectionEnabled: false,
                                     wheelSensitivity: 0.3 });
    cy.fit(undefined, 20);
    describe(pic);
    cy.on("tap", "node.iface", function (e) {
      var i = e.target.data("iface");
      if (i.kind === "port" && !i.mac) { info.textContent = "the lab network's port to " + i.name; return; }
      info.textContent = i.name + " (" + i.kind + ") " + i.state + " · mac " + i.mac + " · mtu " + i.mtu +
        (i.addresses.length ? " · " + i.addresses.join(", ") : "") + (i.peer_note ? " · " + i.peer_note : "");
    });
  }

  /* Picture or Text: one of them shows, and the choice is remembered. */
  function showView(which) {
    view = which;
    screen.hidden = view !== "picture";
    text.hidden = view !== "text";
    panel.dataset.view = view;
    views.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.view === view)); });
    try { localStorage.setItem("labnb.network-view", view); } catch (e) { /* private mode */ }
    if (view === "picture" && api.picture && !panel.hidden) drawPicture(api.picture);
    else if (view === "text" && api.picture) describe(api.picture);
  }

  function refresh() {
    if (panel.hidden || document.hidden) return;
    if (asking) { again = true; return; }
    asking = true;
    fetch(panel.dataset.json, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        // a shared answer was read earlier (for someone else, perhaps before the run that just ended): ask again
        if (r.headers.get("X-Labnb-Shared")) setTimeout(refresh, 1000);
        return r.json().then(function (body) { return { ok: r.ok, body: body }; });
      })
      .then(function (r) {
        if (r.ok) draw(r.body);
        else { info.textContent = r.body.error || "the picture could not be read"; }
      })
      .catch(function (err) { info.textContent = "the picture could not be read: " + err; })
      .then(function () { asking = false; if (again) { again = false; refresh(); } });
  }

  function show(open) {
    panel.hidden = !open;
    document.body.classList.toggle("network-open", open);
    toggle.setAttribute("aria-expanded", String(open));
    try { localStorage.setItem("labnb.network", open ? "open" : ""); } catch (e) { /* private mode */ }
    if (open) { window.labnb.front("network"); refresh(); }
  }

  toggle.addEventListener("click", function () { show(panel.hidden); });
  views.forEach(function (b) { b.addEventListener("click", function () { showView(b.dataset.view); }); });
  panel.querySelector(".network-close").addEventListener("click", function () { show(false); toggle.focus(); });
  window.labnb.panel("network", show);
  // The panel changes size as the terminal opens or closes, the sticky top wraps, the window turns: the
  // picture follows, whole (it was clipped, then tiny, until Fit).
  new ResizeObserver(function () { if (cy && !panel.hidden) { cy.resize(); cy.fit(undefined, 20); } }).observe(screen);
  document.addEventListener("labnb-theme", function () { if (cy) cy.style(style()); });
  panel.querySelector(".network-refresh").addEventListener("click", refresh);
  panel.querySelector(".network-fit").addEventListener("click", function () { if (cy) cy.fit(undefined, 20); });
  document.body.addEventListener("labnb-run-ended", refresh);
  document.addEventListener("visibilitychange", refresh);
  window.labnb.onHostChange(refresh);
  var stored = "", storedView = "";
  try {
    stored = localStorage.getItem("labnb.network") || "";
    storedView = localStorage.getItem("labnb.network-view") || "";
  } catch (e) { /* private mode */ }
  showView(storedView === "text" ? "text" : "picture");
  show(stored === "open");
})();
