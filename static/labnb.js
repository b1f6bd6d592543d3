/* labnb: the lab page's cells. Runs and their output go over Socket.IO;
 * the server keeps every run, so this page only keeps what it shows.
 *
 * Socket.IO packets are MessagePack, so output comes as raw bytes, decoded
 * here with a streaming TextDecoder per run (a character split between
 * chunks is completed by the next), with each chunk's sequence number (seq)
 * and the output position in bytes after it (end). Each cell tracks the last seq it received
 * and the position it has rendered; it acknowledges what it rendered, once per frame, so
 * the server sends no faster than this page can draw. A cell shows at most
 * HEAD_LIMIT bytes from the start and TAIL_LIMIT from the end; the rest is in
 * the full log, downloaded from the server. */
(function () {
  "use strict";
  var HEAD_LIMIT = 1 << 20, TAIL_LIMIT = 1 << 20;
  var main = document.getElementById("lab");
  if (!main) return;
  var labId = main.dataset.lab;
  var cells = new Map();   // step id -> Cell
  var byRun = new Map();   // run id -> Cell
  var banner = document.getElementById("banner");
  var socket = io({ transports: ["websocket"] });

  // MessagePack's binary arrives as an ArrayBuffer (or a view of one).
  function bytes(data) {
    return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  }

  function hostReady() {
    var host = document.getElementById("host");
    return !!host && host.dataset.state === "ready";
  }

  function describe(end) {
    var words = { done: "done", failed: "failed", interrupted: "interrupted", timed_out: "timed out",
                  cut_off: "cut off: the server stopped while this ran", running: "running…" };
    var text = words[end.status] || end.status;
    var parts = [];
    if (end.exit_code !== null && end.exit_code !== undefined) parts.push("exit code " + end.exit_code);
    if (end.duration !== null && end.duration !== undefined) parts.push(end.duration.toFixed(1) + " s");
    return parts.length ? text + " (" + parts.join(", ") + ")" : text;
  }

  function Cell(el) {
    this.el = el;
    this.step = el.dataset.step;
    this.runBtn = el.querySelector("button.run");
    this.stopBtn = el.querySelector("button.stop");
    this.statusEl = el.querySelector(".status");
    this.problemEl = el.querySelector(".problem");
    this.outputEl = el.querySelector(".output");
    this.headEl = el.querySelector("pre.head");
    this.tailEl = el.querySelector("pre.tail");
    this.omittedEl = el.querySelector(".omitted");
    this.checksEl = el.querySelector(".checks");
    this.runId = null;
    this.running = false;
    this.ended = true;
    var self = this;
    this.runBtn.addEventListener("click", function () { self.start(); });
    this.stopBtn.addEventListener("click", function () { self.stop(); });
  }

  Cell.prototype.reset = function (runId) {
    if (this.runId) byRun.delete(this.runId);
    this.runId = runId;
    byRun.set(runId, this);
    this.recvSeq = -1; this.recvEnd = 0; this.pending = []; this.scheduled = false;
    this.running = true; this.ended = false;
    this.clearOutput();
    this.checksEl.textContent = "";
    this.problem("");
    var href = "runs/" + runId + "/log";
    this.el.querySelectorAll("a.log").forEach(function (a) { a.href = "/" + href; });
    this.el.querySelector(".cell-bar a.log").hidden = false;
    this.setStatus("running", "running…");
    this.buttons();
  };

  Cell.prototype.clearOutput = function () {
    this.headEl.textContent = ""; this.tailEl.textContent = "";
    this.headBytes = 0; this.tailBytes = 0; this.omitted = 0; this.tailSpans = [];
    this.omittedEl.hidden = true; this.outputEl.hidden = true;
    this.shownEnd = 0;
    this.decoder = new TextDecoder();
    this.ansi = new AnsiUp();
    this.ansi.use_classes = true;
  };

  Cell.prototype.setStatus = function (status, text) {
    this.el.dataset.status = status;
    this.statusEl.textContent = text;
  };

  Cell.prototype.problem = function (text) {
    this.problemEl.textContent = text;
    this.problemEl.hidden = !text;
  };

  Cell.prototype.buttons = function () {
    this.runBtn.disabled = this.running || !hostReady();
    this.stopBtn.disabled = !this.running;
  };

  Cell.prototype.start = function () {
    var self = this;
    this.problem("");
    this.runBtn.disabled = true;
    this.expecting = true;   // the server attaches this tab to the run it starts
    socket.emit("run", { lab: labId, step: this.step }, function (reply) {
      self.expecting = false;
      if (reply && reply.error) { self.problem(reply.error); self.buttons(); }
    });
  };

  Cell.prototype.stop = function () {
    if (this.runId) socket.emit("stop", { run: this.runId });
  };

  Cell.prototype.attach = function () {
    var self = this;
    socket.emit("attach", { run: this.runId, after: this.recvSeq, end: this.recvEnd }, function (reply) {
      if (reply && reply.error) self.problem(reply.error);
    });
  };

  Cell.prototype.onOutput = function (msg) {
    if (msg.seq <= this.recvSeq) return;   // already have it (a re-attach overlapping a live chunk)
    this.recvSeq = msg.seq; this.recvEnd = msg.end;
    this.pending.push(msg);
    this.schedule();
  };

  Cell.prototype.schedule = function () {
    if (this.scheduled) return;
    this.scheduled = true;
    var self = this, go = function () { self.flush(); };
    // A hidden tab gets no animation frames; it still renders, less often.
    if (document.hidden) setTimeout(go, 100); else requestAnimationFrame(go);
  };

  Cell.prototype.flush = function () {
    this.scheduled = false;
    if (!this.pending.length) return;
    var atBottom = this.atBottom(), end = 0;
    var self = this;
    this.pending.forEach(function (msg) {
      self.append(self.decoder.decode(bytes(msg.data), { stream: true }), msg.end - self.shownEnd);
      self.shownEnd = end = msg.end;
    });
    this.pending = [];
    if (atBottom) this.outputEl.scrollTop = this.outputEl.scrollHeight;
    socket.emit("ack", { run: this.runId, end: end });
  };

  Cell.prototype.atBottom = function () {
    var o = this.outputEl;
    return o.scrollHeight - o.scrollTop - o.clientHeight < 40;
  };

  Cell.prototype.append = function (text, nbytes) {
    if (!text && !nbytes) return;
    this.outputEl.hidden = false;
    var html = this.ansi.ansi_to_html(text.replace(/\r\n/g, "\n"));
    if (this.headBytes < HEAD_LIMIT) {
      this.headEl.insertAdjacentHTML("beforeend", html);
      this.headBytes += nbytes;
      return;
    }
    var span = document.createElement("span");
    span.innerHTML = html;
    this.tailEl.appendChild(span);
    this.tailSpans.push([span, nbytes]);
    this.tailBytes += nbytes;
    while (this.tailBytes > TAIL_LIMIT && this.tailSpans.length > 1) {
      var first = this.tailSpans.shift();
      first[0].remove();
      this.tailBytes -= first[1];
      this.omitted += first[1];
    }
    this.showOmitted();
  };

  Cell.prototype.showOmitted = function () {
    if (!this.omitted) return;
    this.omittedEl.hidden = false;
    this.omittedEl.querySelector(".n").textContent = this.omitted.toLocaleString();
  };

  Cell.prototype.onSnapshot = function (msg) {
    this.clearOutput();
    this.pending = [];
    this.append(new TextDecoder().decode(bytes(msg.head)), HEAD_LIMIT);
    this.headBytes = HEAD_LIMIT;
    this.omitted = msg.omitted;
    this.append(this.decoder.decode(bytes(msg.tail), { stream: true }), msg.end - HEAD_LIMIT - msg.omitted);
    this.showOmitted();
    this.recvSeq = msg.seq; this.recvEnd = this.shownEnd = msg.end;
    this.outputEl.scrollTop = this.outputEl.scrollHeight;
    socket.emit("ack", { run: this.runId, end: msg.end });
  };

  Cell.prototype.onCheck = function (c) {
    var li = document.createElement("li");
    li.className = c.passed ? "pass" : "fail";
    var mark = document.createElement("strong");
    mark.textContent = c.passed ? "✓ passed" : "✗ failed";
    li.appendChild(mark);
    if (!c.passed) {
      var hint = document.createElement("span");
      hint.className = "hint";
      hint.textContent = " " + (c.hint || "");
      li.appendChild(hint);
      if (c.detail) {
        var detail = document.createElement("pre");
        detail.className = "detail";
        detail.textContent = c.detail;
        li.appendChild(detail);
      }
    } else {
      li.appendChild(document.createTextNode(c.kind === "match" ? " the output shows what it should" : " check"));
    }
    this.checksEl.appendChild(li);
  };

  Cell.prototype.onEnd = function (end) {
    this.flush();
    this.running = false; this.ended = true;
    this.setStatus(end.status, describe(end));
    this.checksEl.textContent = "";
    var self = this;
    (end.checks || []).forEach(function (c) { self.onCheck(c); });
    if (end.truncated) this.problem("The output was longer than the server keeps; its last " +
                                    end.truncated.toLocaleString() + " bytes were not stored.");
    this.buttons();
    document.body.dispatchEvent(new CustomEvent("labnb-run-ended", { bubbles: true }));
  };

  document.querySelectorAll(".cell").forEach(function (el) {
    var cell = new Cell(el);
    cells.set(cell.step, cell);
    if (el.dataset.run) cell.reset(el.dataset.run);
    else cell.buttons();
  });

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = !text;
  }

  socket.on("connect", function () {
    showBanner("");
    socket.emit("open", { lab: labId }, function (reply) {
      if (!reply || reply.error) return;
      reply.running.forEach(function (r) {
        var cell = cells.get(r.step);
        if (cell && cell.runId !== r.run) cell.reset(r.run);
      });
      cells.forEach(function (cell) { if (cell.runId && !cell.ended) cell.attach(); });
    });
  });
  socket.on("connect_error", function (err) {
    showBanner("Cannot reach the server: " + (err && err.message ? err.message : err) +
               ". It retries by itself; if this stays, reload the page.");
  });
  socket.on("disconnect", function () {
    showBanner("The connection to the server was lost; reconnecting… Your runs go on and nothing is lost.");
  });
  socket.on("run_started", function (msg) {
    var cell = cells.get(msg.step);
    if (!cell) return;
    if (cell.runId === msg.run) return;
    cell.reset(msg.run);
    if (!cell.expecting) cell.attach();   // another tab started it
  });
  socket.on("output", function (msg) { var c = byRun.get(msg.run); if (c) c.onOutput(msg); });
  socket.on("snapshot", function (msg) { var c = byRun.get(msg.run); if (c) c.onSnapshot(msg); });
  socket.on("check", function (msg) { var c = byRun.get(msg.run); if (c) c.onCheck(msg); });
  socket.on("end", function (msg) { var c = byRun.get(msg.run); if (c) c.onEnd(msg); });
  // Errors of events sent with a callback show in their cell; this is for the rest (acks).
  socket.on("error", function (msg) { console.warn("labnb:", msg && msg.message); });

  document.body.addEventListener("htmx:afterSwap", function () {
    cells.forEach(function (cell) { cell.buttons(); });
  });

  /* The terminal panel: a free shell on the lab host, in xterm.js. Nothing
   * typed or printed here is stored; the server keeps the last 64 KiB of its
   * output in memory and sends it first ("replay": the screen is cleared for
   * it) each time the panel opens the shell. Each shell_output says how many
   * bytes of raw output it stands for; they are acknowledged once xterm has
   * written them, so the server reads the shell no faster than this page
   * draws. After the shell ends, Enter starts a new one. */
  var panel = document.getElementById("terminal");
  if (!panel || !window.Terminal || !window.FitAddon) return;
  var INPUT_PART = 16384;   // UTF-16 units per shell_input: at most 48 KiB of UTF-8, within the server's 64 KiB
  var OPEN_KEY = "labnb-terminal-open";
  var shell = { term: null, fit: null, joined: false, joining: false, ended: false, open: false };
  var body = panel.querySelector(".terminal-body");
  var screen = panel.querySelector(".terminal-screen");
  var toggle = panel.querySelector(".terminal-toggle");
  var statusEl = panel.querySelector(".terminal-status");

  function shellStatus(text) { statusEl.textContent = text || ""; }

  function makeTerm() {
    var term = new window.Terminal({
      cursorBlink: true, scrollback: 5000, fontSize: 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
      theme: { background: "#15191d", foreground: "#e6e6e6" }
    });
    shell.fit = new window.FitAddon.FitAddon();
    term.loadAddon(shell.fit);
    term.open(screen);
    term.onData(shellInput);
    term.onResize(function (dims) {
      size = { rows: dims.rows, cols: dims.cols };
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
    size = null;   // shell_open carries the size
    shellStatus("opening…");
    socket.emit("shell_open", { lab: labId, rows: shell.term.rows, cols: shell.term.cols }, function (reply) {
      shell.joining = false;
      if (reply && reply.error) { shell.joined = false; shellStatus(reply.error); return; }
      shell.joined = true; shell.ended = false;
      shellStatus("");
    });
  }

  // The server handles each event in a thread of its own, so two events in
  // flight may be handled out of order: keystrokes go one shell_input at a
  // time, the next (all typed meanwhile) once the server has taken the last.
  var typed = "", typing = false, size = null, sizing = false;

  function shellInput(data) {
    if (!shell.joined || shell.ended) {
      if (data.indexOf("\r") >= 0) joinShell();   // Enter: a new shell (or try again)
      return;
    }
    typed += data;
    sendTyped();
  }

  function sendTyped() {
    if (typing || !typed || !shell.joined) return;
    var end = Math.min(typed.length, INPUT_PART);   // a long paste goes in parts
    var code = typed.charCodeAt(end - 1);
    if (end < typed.length && code >= 0xd800 && code <= 0xdbff) end -= 1;   // keep a surrogate pair whole
    var part = typed.slice(0, end);
    typed = typed.slice(end);
    typing = true;
    socket.emit("shell_input", { data: part }, function (reply) {
      typing = false;
      if (reply && reply.error) { typed = ""; shellStatus(reply.error); return; }
      sendTyped();
    });
  }

  function sendSize() {
    if (sizing || !size || !shell.joined) return;
    var next = size;
    size = null; sizing = true;
    socket.emit("shell_resize", next, function () { sizing = false; sendSize(); });
  }

  function forgetInFlight() { typed = ""; typing = false; size = null; sizing = false; }

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
  window.addEventListener("resize", function () { requestAnimationFrame(fitTerm); });

  socket.on("shell_output", function (msg) {
    if (!shell.term) return;
    if (msg.replay) shell.term.reset();
    shell.term.write(msg.data, function () {
      if (msg.bytes) socket.emit("shell_ack", { bytes: msg.bytes });
    });
  });
  socket.on("shell_exit", function () {
    shell.ended = true;
    if (shell.term) shell.term.write("\r\n\x1b[2m[the shell ended; press Enter for a new one]\x1b[0m\r\n");
    shellStatus("the shell ended");
  });
  socket.on("connect", function () { shell.joined = false; shell.joining = false; forgetInFlight(); joinShell(); });
  socket.on("disconnect", function () { shell.joined = false; forgetInFlight(); });
  // The lab host became ready (after a start or a reset): open the shell if the panel waits for it.
  document.body.addEventListener("htmx:afterSwap", function () {
    if (hostReady() && shell.open && !shell.joined) joinShell();
  });

  var wasOpen = false;
  try { wasOpen = !!sessionStorage.getItem(OPEN_KEY); } catch (e) { /* storage off */ }
  if (wasOpen) showTerminal(true);
})();
