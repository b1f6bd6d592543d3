/* labnb: the lab page's connection, shared by its parts: the cells
 * (static/cells.js) and the terminal panel (static/terminal.js), loaded
 * after it. It owns the one Socket.IO connection and the banner that tells
 * of it; a part hears of a (re)connection with labnb.onConnect, of a lost
 * one with labnb.onDisconnect, and of the lab host's status fragment being
 * swapped in by htmx (started, reset, failed) with labnb.onHostChange. A panel
 * loads the vendor scripts it needs when it first opens, with labnb.need.
 * It also keeps the page's layout measures (--top-h, --dock-h) and which
 * side panel is in front on a narrow screen (labnb.panel, labnb.front). */
(function () {
  "use strict";
  var main = document.getElementById("lab");
  if (!main) return;
  var socket = io({ transports: ["websocket"] });
  var banner = document.getElementById("banner");
  var hooks = { connect: [], disconnect: [], host: [] };
  var panels = {};   // a side panel's name (network, terminal): its show(open)

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = !text;
  }

  function call(list) { list.forEach(function (fn) { fn(); }); }

  socket.on("connect", function () { showBanner(""); call(hooks.connect); });
  socket.on("connect_error", function (err) {
    showBanner("Cannot reach the server: " + (err && err.message ? err.message : err) +
               ". It retries by itself; if this stays, reload the page.");
  });
  socket.on("disconnect", function () {
    showBanner("The connection to the server was lost; reconnecting… Your runs go on and nothing is lost.");
    call(hooks.disconnect);
  });
  // Errors of events sent with a callback show where they were sent from; this is for the rest (acks).
  socket.on("error", function (msg) { console.warn("labnb:", msg && msg.message); });
  document.body.addEventListener("htmx:afterSwap", function () { call(hooks.host); });

  var statusLabels = JSON.parse(main.dataset.statusLabels || "{}");   // webapp/status.py

  /* What a panel needs and the page does not load before (xterm.js, Cytoscape.js: most of its script),
   * by name: their versioned URLs, listed in templates/lab.html (#labnb-needs). */
  var needs = JSON.parse((document.getElementById("labnb-needs") || {}).textContent || "{}");
  var loading = {};

  function load(url) {
    return new Promise(function (resolve, reject) {
      var css = /\.css(\?|$)/.test(url);
      var el = document.createElement(css ? "link" : "script");
      if (css) { el.rel = "stylesheet"; el.href = url; } else { el.src = url; el.async = false; }   // in order
      el.onload = resolve;
      el.onerror = function () {
        el.remove();
        reject(new Error("could not load " + url.split("?")[0] + " from the server: check the connection, " +
                         "then try again or reload the page"));
      };
      document.head.appendChild(el);
    });
  }

  /* static/labnb.css places the side panels and the step list below the sticky top (--top-h) and keeps the
   * page's end free above the docked terminal (--dock-h); both change height as their contents wrap. */
  function measure(el, name) {
    if (!el) return;
    new ResizeObserver(function () {
      document.documentElement.style.setProperty(name, el.getBoundingClientRect().height + "px");
    }).observe(el);
  }
  measure(document.querySelector(".page-top"), "--top-h");
  measure(document.getElementById("terminal"), "--dock-h");

  /* A panel's "switch" button (on a narrow screen, where each panel takes the whole screen) opens the other
   * panel, or brings it in front. */
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest(".panel-switch");
    if (button && panels[button.dataset.panel]) panels[button.dataset.panel](true);
  });

  window.labnb = {
    main: main,
    labId: main.dataset.lab,
    watching: main.dataset.watch || null,   // the learner whose notebook the instructor watches, read-only
    /* an event's payload, naming the learner watched, if any */
    about: function (payload) { if (main.dataset.watch) payload.learner = main.dataset.watch; return payload; },
    socket: socket,
    /* fn() on every connection; at once if the socket connected before the part loaded */
    onConnect: function (fn) { hooks.connect.push(fn); if (socket.connected) fn(); },
    onDisconnect: function (fn) { hooks.disconnect.push(fn); },
    onHostChange: function (fn) { hooks.host.push(fn); },
    /* a side panel's show(open), for the other panel's switch button */
    panel: function (name, show) { panels[name] = show; },
    /* the side panel just opened or switched to: in front of the other on a narrow screen */
    front: function (name) { document.body.dataset.front = name; },

    /* A promise that ``name``'s scripts and styles (#labnb-needs) have loaded: they are added to the page
     * on the first call; it fails with an Error saying what could not be loaded, and the next call tries
     * again. */
    need: function (name) {
      if (!loading[name]) {
        var urls = needs[name];
        if (!urls) return Promise.reject(new Error("labnb: nothing named " + name + " to load"));
        loading[name] = Promise.all(urls.map(load));
        loading[name].catch(function () { delete loading[name]; });
      }
      return loading[name];
    },

    hostReady: function () {
      var host = document.getElementById("host");
      return !!host && host.dataset.state === "ready";
    },

    /* MessagePack's binary arrives as an ArrayBuffer (or a view of one). */
    bytes: function (data) {
      return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    },

    /* The server's word for how a run stands (done, stopped, timed out ...); static/cells.js makes a step's
     * state in words of it. */
    label: function (status) { return statusLabels[status] || status; }
  };
})();
