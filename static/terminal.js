/* The lab page's terminal panel (after static/labnb.js): a free shell on
 * the lab host (in a lab of several hosts, a tab per host, each its own
 * shell on that host, named as the lab names it: shell_open's `host`), and a
 * tab for each of the lab's named terminals (b1, b2 in
 * lab 1: what the steps typed into them and what came back, live, and what
 * the learner types there), each in its own xterm.js. Nothing typed or
 * printed here is stored; the server keeps the last 64 KiB of each one's
 * output in memory and sends it first ("replay": the xterm is cleared for
 * it) each time a tab opens it. Each shell_output says the position in the
 * raw output after it (end); it is acknowledged once xterm has written it,
 * so the server reads the terminal no faster than this page draws. After one
 * ends, Enter in its tab starts a new one.
 *
 * Each tab's state is its `ShellView`. Keystrokes go one shell_input at a
 * time (typed: what waits; typing: one is in flight), the next (all typed
 * meanwhile) once the server has taken the last; sizes likewise (size,
 * sizing). Input the terminal does not read is refused, not waited for: the
 * status says why, and what was typed is dropped.
 *
 * The keyboard: the terminal's programs take Tab (completion) and Escape, so
 * the way out is Ctrl+M (VS Code's key), which makes Tab and Shift+Tab move
 * the focus until it is pressed again; never Escape then Tab, as an editor
 * may: the Escape would reach the program (bash would take the next key as
 * Alt+key, two Escapes as completion). The bar says so, and the terminal's
 * input names the hint for screen readers. "Screen reader mode" (xterm.js's screenReaderMode: its lines as a
 * list, what it prints announced) and Ctrl+M's mode are remembered. */
(function () {
  "use strict";
  var page = window.labnb;
  var panel = document.getElementById("terminal");
  if (!page || !panel) return;   // xterm.js is loaded when the panel first opens (select)
  var socket = page.socket;
  var watching = !!page.watching;   // the instructor's view of a learner: read-only, nothing started
  var INPUT_PART = 16384;   // UTF-16 units per shell_input: at most 48 KiB of UTF-8, within the server's 64 KiB
  var OPEN_KEY = "labnb-terminal-open";
  var TAB_KEY = "labnb-terminal-tab-moves-focus", READER_KEY = "labnb-terminal-screen-reader";
  var body = panel.querySelector(".terminal-body");
  var toggle = panel.querySelector(".terminal-toggle");
  var statusEl = panel.querySelector(".terminal-status");
  var keysEl = panel.querySelector(".terminal-keys");
  var readerButton = panel.querySelector(".terminal-reader");
  var open = false;
  var views = {};   // by key: a named terminal's name, or "@" and a host's name for the free shell on it
  var active = null;
  var tabMovesFocus = remembered(TAB_KEY), screenReader = remembered(READER_KEY);

  function remembered(key) {
    try { return !!localStorage.getItem(key); } catch (e) { return false; }
  }

  function remember(key, on) {
    try { localStorage.setItem(key, on ? "1" : ""); } catch (e) { /* storage off */ }
  }

  /* An OSC 8 hyperlink in the terminal (http and https only) opens only when
   * the learner has seen where it leads and says yes, in a new window that
   * cannot reach this page. Said here rather than left to xterm.js's default,
   * which does the same today. */
  var linkHandler = {
    allowNonHttpProtocols: false,
    activate: function (e, uri) {
      if (window.confirm("The terminal's output links to\n\n" + uri + "\n\nOpen it in a new window?")) {
        window.open(uri, "_blank", "noopener,noreferrer");
      }
    }
  };

  /* The terminal's colours are the page's (static/labnb.css, --term-*: light or dark). */
  function theme() {
    var css = getComputedStyle(document.documentElement);
    function c(name) { return css.getPropertyValue("--term-" + name).trim(); }
    return { background: c("bg"), foreground: c("fg"), cursor: c("fg"), selectionBackground: c("selection") };
  }

  /* A view's key: a named terminal's name, or the free shell's host prefixed with "@" (a name cannot start so). */
  function keyOf(term, host) { return term || "@" + (host || ""); }

  function ShellView(tab) {
    this.term = tab.dataset.term;
    this.host = tab.dataset.host || "";
    this.key = keyOf(this.term, this.host);
    this.tab = tab;
    this.el = panel.querySelector('.shell-view[data-term="' + CSS.escape(this.term) + '"]' +
                                  (this.term ? "" : '[data-host="' + CSS.escape(this.host) + '"]'));
    this.xterm = null; this.fit = null;
    this.joined = false; this.joining = false; this.ended = false;
    this.awaitOutput = false;   // what is typed waits for the shell's first output (it would show twice)
    this.typed = ""; this.typing = false; this.size = null; this.sizing = false;
    this.status = "";
    var self = this;
    tab.addEventListener("click", function () { select(self); showTerminal(true); });
  }

  /* an event's payload about this shell (and the learner watched, if any) */
  ShellView.prototype.about = function (payload) {
    if (this.term) payload.term = this.term;
    if (this.host) payload.host = this.host;
    return page.about(payload);
  };

  ShellView.prototype.setStatus = function (text) {
    this.status = text || "";
    if (this === active) statusEl.textContent = this.status;
  };

  ShellView.prototype.make = function () {
    var self = this;
    var xterm = new window.Terminal({
      cursorBlink: true, scrollback: 5000, fontSize: 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
      theme: theme(),
      linkHandler: linkHandler, disableStdin: watching, screenReaderMode: screenReader
    });
    this.fit = new window.FitAddon.FitAddon();
    xterm.loadAddon(this.fit);
    xterm.open(this.el);
    xterm.attachCustomKeyEventHandler(forTerminal);
    xterm.textarea.setAttribute("aria-label", this.term ? "Terminal " + this.term
                                              : this.host ? "Shell on host " + this.host : "Shell on your lab host");
    xterm.textarea.setAttribute("aria-describedby", keysEl.id);
    xterm.onData(function (data) { self.input(data); });
    xterm.onResize(function (dims) {
      if (watching) return;   // the learner's terminal keeps the learner's size
      self.size = { rows: dims.rows, cols: dims.cols };
      self.sendSize();
    });
    this.xterm = xterm;
  };

  /* xterm's key handler: false for the keys that are not the terminal's (the browser then moves the focus). */
  function forTerminal(e) {
    if (e.code === "KeyM" && e.ctrlKey && !e.altKey && !e.metaKey && !e.shiftKey) {
      if (e.type === "keydown") {
        e.preventDefault();
        tabMovesFocus = !tabMovesFocus;
        remember(TAB_KEY, tabMovesFocus);
        showKeys();
      }
      return false;
    }
    return !(tabMovesFocus && e.key === "Tab" && !e.ctrlKey && !e.altKey && !e.metaKey);
  }

  function showKeys() {
    keysEl.textContent = tabMovesFocus ? "Tab moves focus. Ctrl+M: Tab is the terminal's"
                                       : "Tab is the terminal's. Ctrl+M: Tab moves focus";
  }

  function showScreenReader() {
    readerButton.setAttribute("aria-pressed", String(screenReader));
    each(function (s) { if (s.xterm) s.xterm.options.screenReaderMode = screenReader; });
  }

  ShellView.prototype.fitTerm = function () {
    if (!open || this !== active || !this.xterm) return;
    try { this.fit.fit(); } catch (e) { /* not laid out yet */ }
  };

  ShellView.prototype.join = function () {
    if (!open || !this.xterm || this.joining || !socket.connected) return;
    var self = this;
    this.joining = true;
    this.size = null;   // shell_open carries the size
    this.setStatus("opening…");
    socket.emit("shell_open", this.about({ lab: page.labId, rows: this.xterm.rows, cols: this.xterm.cols }),
      function (reply) {
        self.joining = false;
        if (reply && reply.error) { self.joined = false; self.setStatus(reply.error); return; }
        self.joined = true; self.ended = false;
        self.setStatus("");
        self.sendTyped();   // what was typed meanwhile (after the shell's first output, which may come first)
      });
  };

  ShellView.prototype.input = function (data) {
    if (!this.joined || this.ended) {
      if (data.indexOf("\r") >= 0) this.join();   // Enter: a new shell (or try again; a watcher: look again)
      return;
    }
    if (watching) return;
    this.typed += data;
    this.sendTyped();
  };

  ShellView.prototype.sendTyped = function () {
    if (this.typing || !this.typed || !this.joined || this.awaitOutput) return;
    var end = Math.min(this.typed.length, INPUT_PART);   // a long paste goes in parts
    var code = this.typed.charCodeAt(end - 1);
    if (end < this.typed.length && code >= 0xd800 && code <= 0xdbff) end -= 1;   // keep a surrogate pair whole
    var part = this.typed.slice(0, end);
    var self = this;
    this.typed = this.typed.slice(end);
    this.typing = true;
    socket.emit("shell_input", this.about({ data: part }), function (reply) {
      self.typing = false;
      if (reply && reply.error) { self.typed = ""; self.setStatus(reply.error); return; }
      self.sendTyped();
    });
  };

  ShellView.prototype.sendSize = function () {
    if (this.sizing || !this.size || !this.joined) return;
    var next = this.size, self = this;
    this.size = null; this.sizing = true;
    socket.emit("shell_resize", this.about(next), function () { self.sizing = false; self.sendSize(); });
  };

  ShellView.prototype.forgetInFlight = function () {
    this.joined = false; this.typed = ""; this.typing = false; this.size = null; this.sizing = false;
  };

  ShellView.prototype.output = function (msg) {
    if (!this.xterm) return;
    if (msg.replay) this.xterm.reset();
    var self = this;
    this.xterm.write(page.bytes(msg.data), function () { socket.emit("shell_ack", self.about({ end: msg.end })); });
    if (this.awaitOutput) { this.awaitOutput = false; this.sendTyped(); }
  };

  ShellView.prototype.exited = function () {
    this.ended = true;
    var what = this.term ? "terminal " + this.term : this.host ? "the shell on " + this.host : "the shell";
    var then = watching ? "press Enter to look again" : "press Enter for a new one";
    if (this.xterm) this.xterm.write("\r\n\x1b[2m[" + what + " ended; " + then + "]\x1b[0m\r\n");
    this.setStatus(what + " ended");
  };

  /* Show ``view`` in the panel (its xterm made and its terminal opened once the panel is open; the focus
   * in it, but with ``stay``: on the tabs, as the arrow keys move along them). */
  function select(view, stay) {
    active = view;
    Object.keys(views).forEach(function (t) {
      var s = views[t];
      s.el.hidden = s !== view;
      s.tab.setAttribute("aria-selected", String(s === view));
    });
    statusEl.textContent = view.status;
    if (!open) return;
    page.need("xterm").then(function () {
      if (!open || view !== active) return;   // closed or switched while xterm.js loaded
      if (!view.xterm) view.make();
      view.fitTerm();
      if (!view.joined) view.join();
      if (!stay) view.xterm.focus();
    }, function (err) { view.setStatus("The terminal " + err.message); });
  }

  function showTerminal(show, stay) {
    open = show;
    panel.dataset.open = String(show);
    body.hidden = !show;
    toggle.textContent = show ? "Hide terminal" : "Open terminal";
    toggle.setAttribute("aria-expanded", String(show));
    document.body.classList.toggle("terminal-open", show);
    try { sessionStorage.setItem(OPEN_KEY, show ? "1" : ""); } catch (e) { /* storage off */ }
    if (show) { page.front("terminal"); select(active, stay); }
  }

  var tabs = Array.prototype.slice.call(panel.querySelectorAll(".terminal-tab"));
  tabs.forEach(function (tab) {
    var view = new ShellView(tab);
    views[view.key] = view;
    if (!active) active = view;
    // The tabs as a tab list: arrow keys, Home and End move between them (and show the one reached).
    tab.addEventListener("keydown", function (e) {
      var n = tabs.indexOf(tab), to = { ArrowLeft: n - 1, ArrowRight: n + 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      var next = tabs[(to + tabs.length) % tabs.length];
      next.focus();
      select(views[keyOf(next.dataset.term, next.dataset.host)], true);
      showTerminal(true, true);
    });
  });
  var shells = tabs.filter(function (t) { return !t.dataset.term; }).map(function (t) { return views[keyOf("", t.dataset.host)]; });
  toggle.addEventListener("click", function () { showTerminal(!open); });
  readerButton.addEventListener("click", function () {
    screenReader = !screenReader;
    remember(READER_KEY, screenReader);
    showScreenReader();
  });
  showKeys();
  showScreenReader();

  /* Each command of the lab can be typed into the terminal with a click, to
   * try it or a variation of it outside the step's run, as Killercoda does. */
  // Not those of a named terminal: they are typed into that one (a container's shell, say).
  if (!watching) page.main.querySelectorAll(".command:not(.in-terminal)").forEach(function (block) {
    var code = block.querySelector("pre code");
    var button = document.createElement("button");
    button.className = "to-terminal";
    button.type = "button";
    button.textContent = "▶ terminal";
    button.title = "Type this into the terminal below";
    button.addEventListener("click", function () {   // into the shell on the command's host (the first if none)
      var shell = (block.dataset.host && views[keyOf("", block.dataset.host)]) || shells[0];
      if (!shell.joined || shell.ended) {
        // Typed before the shell's first prompt, it would show twice (the
        // terminal echoes what waits): send it with the shell's first output.
        shell.awaitOutput = true;
        shell.joined = shell.joined && !shell.ended;
      }
      select(shell);
      showTerminal(true);
      shell.typed += code.textContent.replace(/\n+$/, "").replace(/\n/g, "\r") + "\r";
      shell.sendTyped();
    });
    block.appendChild(button);
  });
  page.panel("terminal", showTerminal);
  // The terminal fits its panel, which changes as the window does and as the network picture opens beside it.
  new ResizeObserver(function () { requestAnimationFrame(function () { active.fitTerm(); }); }).observe(body);
  document.addEventListener("labnb-theme", function () {
    each(function (s) { if (s.xterm) s.xterm.options.theme = theme(); });
  });

  function viewOf(msg) { return msg ? views[keyOf(msg.term, msg.host)] : undefined; }
  socket.on("shell_output", function (msg) { var s = viewOf(msg); if (s) s.output(msg); });
  socket.on("shell_exit", function (msg) { var s = viewOf(msg); if (s) s.exited(); });
  function each(fn) { Object.keys(views).forEach(function (t) { fn(views[t]); }); }
  page.onConnect(function () { each(function (s) { s.forgetInFlight(); s.joining = false; s.join(); }); });
  page.onDisconnect(function () { each(function (s) { s.forgetInFlight(); }); });
  // The lab host became ready (after a start or a reset): open the terminals the panel waits for.
  page.onHostChange(function () {
    if (page.hostReady()) each(function (s) { if (!s.joined) s.join(); });
  });

  var wasOpen = false;
  try { wasOpen = !!sessionStorage.getItem(OPEN_KEY); } catch (e) { /* storage off */ }
  if (wasOpen) showTerminal(true);
})();
