/* The lab page's terminal panel (after static/labnb.js): a free shell on
 * the lab host, in xterm.js. Nothing typed or printed here is stored; the
 * server keeps the last 64 KiB of its output in memory and sends it first ("replay": the screen is cleared for
 * it) each time the panel opens the shell. Each shell_output says the
 * position in the raw output after it (end); it is acknowledged once xterm
 * has written it, so the server reads the shell no faster than this page
 * draws. After the shell ends, Enter starts a new one.
 *
 * All its state is in `shell`. The server handles each event in a thread
 * of its own, so two events in flight may be handled out of order:
 * keystrokes go one shell_input at a time (typed: what waits; typing: one
 * is in flight), the next (all typed meanwhile) once the server has taken
 * the last; sizes likewise (size, sizing). */
(function () {
  "use strict";
  var page = window.labnb;
  var panel = document.getElementById("terminal");
  if (!page || !panel || !window.Terminal || !window.FitAddon) return;
  var socket = page.socket;
  var INPUT_PART = 16384;   // UTF-16 units per shell_input: at most 48 KiB of UTF-8, within the server's 64 KiB
  var OPEN_KEY = "labnb-terminal-open";
  var shell = {
    term: null, fit: null, open: false,
    joined: false, joining: false, ended: false,
    awaitOutput: false,   // what is typed waits for the shell's first output (it would show twice)
    typed: "", typing: false, size: null, sizing: false
  };
  var body = panel.querySelector(".terminal-body");
  var screen = panel.querySelector(".terminal-screen");
  var toggle = panel.querySelector(".terminal-toggle");
  var statusEl = panel.querySelector(".terminal-status");

  function shellStatus(text) { statusEl.textContent = text || ""; }

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

  function makeTerm() {
    var term = new window.Terminal({
      cursorBlink: true, scrollback: 5000, fontSize: 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
      theme: { background: "#15191d", foreground: "#e6e6e6" },
      linkHandler: linkHandler
    });
    shell.fit = new window.FitAddon.FitAddon();
    term.loadAddon(shell.fit);
    term.open(screen);
    term.onData(shellInput);
    term.onResize(function (dims) {
      shell.size = { rows: dims.rows, cols: dims.cols };
      sendSize();
    });
    shell.term = term;
  }

  function fitTerm() {
    if (!shell.open || !shell.term) return;
    try { shell.fit.fit(); } catch (e) { /* not laid out yet */ }
  }

  function joinShell() {
    if (!shell.open || shell.joining || !socket.connected) return;
    shell.joining = true;
    shell.size = null;   // shell_open carries the size
    shellStatus("opening…");
    socket.emit("shell_open", { lab: page.labId, rows: shell.term.rows, cols: shell.term.cols }, function (reply) {
      shell.joining = false;
      if (reply && reply.error) { shell.joined = false; shellStatus(reply.error); return; }
      shell.joined = true; shell.ended = false;
      shellStatus("");
      sendTyped();   // what was typed meanwhile (after the shell's first output, which may come first)
    });
  }

  function shellInput(data) {
    if (!shell.joined || shell.ended) {
      if (data.indexOf("\r") >= 0) joinShell();   // Enter: a new shell (or try again)
      return;
    }
    shell.typed += data;
    sendTyped();
  }

  function sendTyped() {
    if (shell.typing || !shell.typed || !shell.joined || shell.awaitOutput) return;
    var end = Math.min(shell.typed.length, INPUT_PART);   // a long paste goes in parts
    var code = shell.typed.charCodeAt(end - 1);
    if (end < shell.typed.length && code >= 0xd800 && code <= 0xdbff) end -= 1;   // keep a surrogate pair whole
    var part = shell.typed.slice(0, end);
    shell.typed = shell.typed.slice(end);
    shell.typing = true;
    socket.emit("shell_input", { data: part }, function (reply) {
      shell.typing = false;
      if (reply && reply.error) { shell.typed = ""; shellStatus(reply.error); return; }
      sendTyped();
    });
  }

  function sendSize() {
    if (shell.sizing || !shell.size || !shell.joined) return;
    var next = shell.size;
    shell.size = null; shell.sizing = true;
    socket.emit("shell_resize", next, function () { shell.sizing = false; sendSize(); });
  }

  function forgetInFlight() { shell.typed = ""; shell.typing = false; shell.size = null; shell.sizing = false; }

  function showTerminal(open) {
    shell.open = open;
    panel.dataset.open = String(open);
    body.hidden = !open;
    toggle.textContent = open ? "Hide terminal" : "Open terminal";
    toggle.setAttribute("aria-expanded", String(open));
    document.body.classList.toggle("terminal-open", open);
    try { sessionStorage.setItem(OPEN_KEY, open ? "1" : ""); } catch (e) { /* storage off */ }
    if (!open) return;
    if (!shell.term) makeTerm();
    fitTerm();
    if (!shell.joined) joinShell();
    shell.term.focus();
  }

  toggle.addEventListener("click", function () { showTerminal(!shell.open); });

  /* Each command of the lab can be typed into the terminal with a click, to
   * try it or a variation of it outside the step's run, as Killercoda does. */
  // Not those of a named terminal: they are typed into that one (a container's shell, say).
  page.main.querySelectorAll(".command:not(.in-terminal)").forEach(function (block) {
    var code = block.querySelector("pre code");
    var button = document.createElement("button");
    button.className = "to-terminal";
    button.type = "button";
    button.textContent = "▶ terminal";
    button.title = "Type this into the terminal below";
    button.addEventListener("click", function () {
      if (!shell.joined || shell.ended) {
        // Typed before the shell's first prompt, it would show twice (the
        // terminal echoes what waits): send it with the shell's first output.
        shell.awaitOutput = true;
        shell.joined = shell.joined && !shell.ended;
      }
      showTerminal(true);
      shell.typed += code.textContent.replace(/\n+$/, "").replace(/\n/g, "\r") + "\r";
      sendTyped();
    });
    block.appendChild(button);
  });
  window.addEventListener("resize", function () { requestAnimationFrame(fitTerm); });

  socket.on("shell_output", function (msg) {
    if (!shell.term) return;
    if (msg.replay) shell.term.reset();
    shell.term.write(page.bytes(msg.data), function () {
      socket.emit("shell_ack", { end: msg.end });
    });
    if (shell.awaitOutput) { shell.awaitOutput = false; sendTyped(); }
  });
  socket.on("shell_exit", function () {
    shell.ended = true;
    if (shell.term) shell.term.write("\r\n\x1b[2m[the shell ended; press Enter for a new one]\x1b[0m\r\n");
    shellStatus("the shell ended");
  });
  page.onConnect(function () { shell.joined = false; shell.joining = false; forgetInFlight(); joinShell(); });
  page.onDisconnect(function () { shell.joined = false; forgetInFlight(); });
  // The lab host became ready (after a start or a reset): open the shell if the panel waits for it.
  page.onHostChange(function () {
    if (page.hostReady() && shell.open && !shell.joined) joinShell();
  });

  var wasOpen = false;
  try { wasOpen = !!sessionStorage.getItem(OPEN_KEY); } catch (e) { /* storage off */ }
  if (wasOpen) showTerminal(true);
})();
