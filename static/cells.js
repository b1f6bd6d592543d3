/* The lab page's cells (after static/labnb.js). Runs and their output go
 * over Socket.IO; the server keeps every run, so this page only keeps what
 * it shows.
 *
 * Socket.IO packets are MessagePack, so output comes as raw bytes, decoded
 * here with a streaming TextDecoder per run (a character split between
 * chunks is completed by the next), with each chunk's sequence number (seq)
 * and the output position in bytes after it (end). Each cell tracks the last
 * seq it received and acknowledges the position it has taken into its
 * bounded queues (Cell.take), so the server sends no faster than this page
 * takes output in, and the page never holds more than it shows. A cell shows
 * at most HEAD_LIMIT bytes from the start and TAIL_LIMIT from the end; the
 * rest is in the full log, downloaded from the server.
 *
 * One step of a lab runs at a time on a lab host. A run this tab asks for
 * while a step runs waits in the tab's queue (shown as queued, with Unqueue
 * to take it back) and starts when the running one ends, as in Jupyter; Run
 * all and Run to here queue steps in order. A step that does not pass (a
 * failed check, a failed command, stopped, timed out) drops the rest of the
 * queue, and the dropped cells say so: the steps after it build on it.
 *
 * Each section.step carries its state in data-state (not-run, queued,
 * running, passed, failed, failed-expected), in words in its cell and as a
 * mark on its heading; each change (and each step's state as the page
 * loads) is told with a "labnb-step-state" event on document, {step, state}. */
(function () {
  "use strict";
  var page = window.labnb;
  if (!page) return;
  var socket = page.socket, bytes = page.bytes;
  var HEAD_LIMIT = 1 << 20, TAIL_LIMIT = 1 << 20, BLOCK_CHARS = 64 << 10;
  var SGR = /\x1b\[[0-9;]*m/g;   // colour and style codes
  var cells = new Map();   // step id -> Cell, in the lab's order
  var byRun = new Map();   // run id -> Cell
  var queue = [];          // cells waiting for their turn to run, first first
  var starting = null;     // the cell whose run this tab asked for, until the server answers
  var STATES = JSON.parse(page.main.dataset.stepStates);   // state -> [mark, words] (webapp/notebook/views.py)

  function utf8len(s) {
    var n = s.length;
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c >= 0x80) n += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
    }
    return n;
  }

  /* Where to cut text for a block of at most `limit` characters: after the
   * last line end within it, or (a line longer than that) at the limit, but
   * never inside a surrogate pair or a \r\n. */
  function cutAt(text, limit) {
    if (text.length <= limit) return text.length;
    var nl = text.lastIndexOf("\n", limit - 1);
    if (nl >= 0) return nl + 1;
    var cut = limit, c = text.charCodeAt(cut - 1);
    if ((c >= 0xd800 && c <= 0xdbff) || c === 13) cut -= 1;
    return Math.max(cut, 1);
  }

  /* Rows the text takes in a pre `cols` characters wide: an estimate of a
   * block's height until it is laid out. */
  function rows(text, cols) {
    var n = 0, at = 0;
    while (at <= text.length) {
      var nl = text.indexOf("\n", at);
      if (nl < 0) nl = text.length;
      n += Math.max(1, Math.ceil((nl - at) / cols));
      at = nl + 1;
    }
    return n;
  }

  /* An OSC 8 hyperlink in output (ansi_up would make it an <a href>) shows
   * as its text, not as a link: a command's output must not be able to send
   * the learner elsewhere with a click. Its target shows on hover. Called by
   * AnsiUp as its own method (this: the AnsiUp, whose escaping it uses). */
  function inertLink(pkt) {
    return '<span class="osc-link" title="' + this.escape_txt_for_html("a link to " + pkt.url + " (not followed)") +
           '">' + this.escape_txt_for_html(pkt.text) + "</span>";
  }

  /* One <pre> of a cell's output (its head or its tail), drawn in blocks of
   * at most BLOCK_CHARS that the browser lays out one by one (inline-blocks a
   * line wide, which keep copied text free of extra line breaks). Each draw
   * adds blocks of whole lines; an unfinished last line stays open for the
   * next draw to finish. Blocks older than the last two are not laid out
   * while out of sight (content-visibility), so a draw costs the layout of
   * what it adds, not of all the pre shows (one growing text took 0.2 to
   * 0.5 s per draw at 1 MiB). Each block knows its bytes, so the tail can
   * drop its oldest. */
  function Pane(pre) {
    this.pre = pre;
    this.clear();
  }

  Pane.prototype.clear = function () {
    this.pre.textContent = "";
    this.blocks = [];     // {el, bytes, chars}
    this.bytes = 0;
    this.open = null;     // the last block, while its line is unfinished and it has room
  };

  Pane.prototype.add = function (text, nbytes, html) {
    this.bytes += nbytes;
    var cols = this.cols();   // before the pre changes: reading a width makes the browser lay it out
    while (text) {
      var open = this.open;
      var cut = open ? Math.min(cutAt(text, BLOCK_CHARS - open.chars), text.indexOf("\n") + 1 || text.length)
                     : cutAt(text, BLOCK_CHARS);
      var part = text.slice(0, cut);
      var n = cut < text.length ? Math.min(nbytes, utf8len(part)) : nbytes;
      if (open) {
        open.el.insertAdjacentHTML("beforeend", html(part));
        open.bytes += n; open.chars += part.length;
      } else {
        open = this.block(html(part), n, part.length);
        open.el.style.containIntrinsicBlockSize = "auto " + rows(part, cols) + "lh";
      }
      this.open = part.charAt(part.length - 1) === "\n" || open.chars >= BLOCK_CHARS ? null : open;
      text = text.slice(cut); nbytes -= n;
    }
    this.settle();
  };

  Pane.prototype.block = function (content, nbytes, nchars) {
    var el = document.createElement("span");
    el.innerHTML = content;
    this.pre.appendChild(el);
    var block = { el: el, bytes: nbytes, chars: nchars };
    this.blocks.push(block);
    return block;
  };

  /* Blocks before the last two (the end a learner sees) may be skipped by
   * layout while they are out of sight; until laid out, their height is the
   * estimate from rows(). */
  Pane.prototype.settle = function () {
    for (var i = this.blocks.length - 3; i >= 0 && !this.blocks[i].settled; i--) {
      this.blocks[i].el.classList.add("settled");
      this.blocks[i].settled = true;
    }
  };

  /* Characters per row, from the pre's width and its font (measured once). */
  Pane.prototype.cols = function () {
    if (!Pane.charWidth) {
      var ctx = document.createElement("canvas").getContext("2d");
      ctx.font = getComputedStyle(this.pre).font;
      Pane.charWidth = ctx.measureText("0").width || 8;
    }
    return Math.max(20, Math.floor(this.pre.clientWidth / Pane.charWidth) || 100);
  };

  /* Drop the oldest blocks while more than limit bytes are shown; returns the bytes dropped. */
  Pane.prototype.drop = function (limit) {
    var dropped = 0;
    while (this.bytes > limit && this.blocks.length > 1) {
      var first = this.blocks.shift();
      first.el.remove();
      this.bytes -= first.bytes;
      dropped += first.bytes;
    }
    return dropped;
  };

  /* A step's state and the words for it, from how its last run ended (a run's `end`, or as the page had
   * it recorded): a failed check is named by its hint, and a step whose last command is meant to fail
   * (docs/lab-format.md, "fails") failed as expected when it ended as it should. */
  function verdict(end, cell) {
    var took = typeof end.duration === "number" ? end.duration.toFixed(1) + " s" : null;
    var exit = end.exit_code !== null && end.exit_code !== undefined ? "exit code " + end.exit_code : null;
    var words = function (text, parts) {
      parts = parts.filter(Boolean);
      return parts.length ? text + " (" + parts.join(", ") + ")" : text;
    };
    if (end.status === "done") {
      return cell.fails === "last" ? { state: "failed-expected", text: words("failed as expected", [exit, took]) }
                                   : { state: "passed", text: words("passed", [took]) };
    }
    var failedChecks = (end.checks || []).filter(function (c) { return !c.passed; });
    var text;
    if (end.status !== "failed") text = words(page.label(end.status), [took]);   // stopped, timed out, cut off
    else if (failedChecks.length) {
      text = "check failed: " + failedChecks[0].hint;
      if (failedChecks.length > 1) text += " (and " + (failedChecks.length - 1) + " more)";
    } else if (exit === null && end.signal) text = "failed: a command was killed by signal " + end.signal;
    else if (exit !== null && end.exit_code !== 0) text = words("failed: a command exited with " + end.exit_code, [took]);
    else if (cell.fails) text = words("failed: a command meant to fail succeeded", [took]);
    else text = "failed: see the output";
    return { state: "failed", text: text };
  }

  function anyRunning() {
    if (starting) return true;
    for (var cell of cells.values()) if (cell.running) return true;
    return false;
  }

  /* Start the first queued step once no step runs (and the lab host takes commands, and the server
   * has told this tab, on connecting, which steps run now). */
  function pump() {
    if (!queue.length || anyRunning() || !page.hostReady() || !socket.connected) return;
    var cell = queue.shift();
    cell.queued = false;
    cell.start();
    queue.forEach(function (c) { c.show(); });
  }

  /* The queue after a step that did not pass (or could not start): its cells are not run, and say why. */
  function dropQueue(why) {
    var dropped = queue.splice(0);
    dropped.forEach(function (c) {
      c.queued = false;
      c.problem("Not run: " + why + ", so the queue stopped there.");
      c.show();
    });
  }

  /* Queue the runnable steps among `list` in order (Run all, Run to here), after any of them already
   * running or queued: a step before those is behind the learner already. */
  function queueSteps(list) {
    var from = 0;
    list.forEach(function (c, i) { if (c.running || c.queued || starting === c) from = i + 1; });
    list.slice(from).forEach(function (c) { if (c.runnable) c.request(); });
  }

  function Cell(el, index) {
    this.el = el;
    this.section = el.closest("section.step");
    this.index = index;
    this.step = el.dataset.step;
    this.fails = el.dataset.fails || "";            // "last": the step's last command is meant to fail; "some"
    this.runnable = el.dataset.runnable !== "false";  // a step with no command to run and no check is skipped
    this.runBtn = el.querySelector("button.run");
    this.stopBtn = el.querySelector("button.stop");
    this.runToBtn = el.querySelector("button.run-to");
    this.markEl = this.section.querySelector(".step-mark .mark");
    this.stateTextEl = this.section.querySelector(".step-mark .step-state-text");
    this.statusEl = el.querySelector(".status");
    this.problemEl = el.querySelector(".problem");
    this.outputEl = el.querySelector(".output");
    this.head = new Pane(el.querySelector("pre.head"));
    this.tail = new Pane(el.querySelector("pre.tail"));
    this.omittedEl = el.querySelector(".omitted");
    this.checksEl = el.querySelector(".checks");
    this.runId = null;
    this.clearOutput();
    this.running = false;   // a run of it is on, as far as this tab knows
    this.ended = true;      // this tab has its run's end (else it attaches to it on each connection)
    this.queued = false;
    this.result = null;     // {state, text} of its last run, once ended
    var self = this, o = this.outputEl;
    this.runBtn.addEventListener("click", function () { self.request(); });
    this.runToBtn.addEventListener("click", function () {
      queueSteps(Array.from(cells.values()).slice(0, self.index));
    });
    // Follow the output's end unless the learner scrolls away from it; only
    // their own scrolling counts (a draw's layout also moves the scroll position).
    ["wheel", "touchstart", "keydown", "mousedown"].forEach(function (type) {
      o.addEventListener(type, function () { self.userScroll = performance.now(); }, { passive: true });
    });
    // Blocks that come into sight get their real height only when laid out.
    var resized = new ResizeObserver(function () { self.toEnd(); });
    resized.observe(this.head.pre);
    resized.observe(this.tail.pre);
    o.addEventListener("scroll", function () {
      if (performance.now() - self.userScroll < 1000) {
        self.follow = o.scrollHeight - o.scrollTop - o.clientHeight < 40;
      }
    }, { passive: true });
    this.stopBtn.addEventListener("click", function () { if (self.queued) self.unqueue(); else self.stop(); });
  }

  /* A run of this step started (here or in another tab, or before the page loaded). */
  Cell.prototype.started = function (runId) {
    if (this.queued) this.unqueue();   // another tab ran it meanwhile
    this.reset(runId);
    this.running = true; this.ended = false;
    this.el.dataset.status = "running";
    this.show();
  };

  Cell.prototype.reset = function (runId) {
    if (this.runId) byRun.delete(this.runId);
    this.runId = runId;
    byRun.set(runId, this);
    this.recvSeq = -1; this.recvEnd = 0; this.scheduled = false;
    this.ended = false;
    this.clearOutput();
    this.checksEl.textContent = "";
    this.problem("");
    var href = "runs/" + runId + "/log";
    this.el.querySelectorAll("a.log").forEach(function (a) { a.href = "/" + href; });
    this.el.querySelector(".cell-bar a.log").hidden = false;
  };

  Cell.prototype.clearOutput = function () {
    this.head.clear(); this.tail.clear();
    this.headBytes = 0; this.omitted = 0;
    this.headQueue = []; this.queuedHead = 0; this.tailQueue = []; this.queuedTail = 0;
    this.omittedEl.hidden = true; this.outputEl.hidden = true;
    this.takenEnd = 0; this.renderAt = 0; this.follow = true; this.userScroll = 0;
    this.decoder = new TextDecoder();
    this.ansi = new AnsiUp();
    this.ansi.use_classes = true;
    this.ansi.process_hyperlink = inertLink;
  };

  /* Show the step's state: the words in its cell, the mark on its heading, data-state, its buttons; and tell
   * of a change. */
  Cell.prototype.show = function () {
    var state = this.queued ? "queued" : this.running || starting === this ? "running"
              : this.result ? this.result.state : "not-run";
    var text = this.queued ? "queued: runs when the steps before it in the queue have passed"
             : this.running ? "running…" : starting === this ? "starting…"
             : this.result ? this.result.text : "not run";
    this.statusEl.textContent = text;
    this.markEl.textContent = STATES[state][0];
    this.stateTextEl.textContent = STATES[state][1] + ": ";
    this.buttons();
    if (this.section.dataset.state === state) return;
    this.section.dataset.state = state;
    if (announce) announce(this, state);
  };

  var announce = null;   // set once the page's scripts have all loaded: each step's state is told then

  function tell(cell, state) {
    document.dispatchEvent(new CustomEvent("labnb-step-state", { detail: { step: cell.step, state: state } }));
  }

  Cell.prototype.problem = function (text) {
    this.problemEl.textContent = text;
    this.problemEl.hidden = !text;
  };

  Cell.prototype.buttons = function () {
    var off = !page.hostReady() || !!page.watching;
    this.runBtn.disabled = off || this.running || this.queued || starting === this;
    this.runToBtn.disabled = off;
    this.stopBtn.disabled = !(this.running || this.queued) || !!page.watching;
    this.stopBtn.textContent = this.queued ? "Unqueue" : "Stop";
    this.stopBtn.title = this.queued ? "Take this step out of the queue" : "";
  };

  /* Run the step now, or after the step that runs (and those queued before it). */
  Cell.prototype.request = function () {
    if (page.watching || this.running || this.queued || starting === this) return;
    this.problem("");
    this.queued = true;
    queue.push(this);
    this.show();
    pump();
  };

  Cell.prototype.unqueue = function () {
    queue = queue.filter(function (c) { return c !== this; }, this);
    this.queued = false;
    this.show();
  };

  Cell.prototype.start = function () {
    var self = this;
    this.problem("");
    starting = this;   // the server attaches this tab to the run it starts
    this.show();
    socket.emit("run", { lab: page.labId, step: this.step }, function (reply) {
      starting = null;
      if (reply && reply.run && self.runId !== reply.run) self.started(reply.run);   // before its run_started
      if (reply && reply.error) {
        if (anyRunning()) {   // another tab's run came first: wait for it
          self.queued = true;
          queue.unshift(self);
        } else {
          self.problem(reply.error);
          dropQueue("step " + self.index + " could not start");
        }
      }
      self.show();
      pump();   // its run may have ended before this answer came
    });
  };

  Cell.prototype.stop = function () {
    if (this.runId) socket.emit("stop", { run: this.runId });
  };

  Cell.prototype.attach = function () {
    var self = this;
    socket.emit("attach", page.about({ run: this.runId, after: this.recvSeq, end: this.recvEnd }), function (reply) {
      if (reply && reply.error) self.problem(reply.error);
    });
  };

  Cell.prototype.onOutput = function (msg) {
    if (msg.seq <= this.recvSeq) return;   // already have it (a re-attach overlapping a live chunk)
    this.recvSeq = msg.seq; this.recvEnd = msg.end;
    this.take(this.decoder.decode(bytes(msg.data), { stream: true }), msg.end - this.takenEnd);
    this.takenEnd = msg.end;
    this.ack();
  };

  /* Take output into the cell's bounded queues, to be drawn by the next
   * render: the head until it is full, then the tail, whose oldest parts go
   * (counted as omitted) once it holds more than TAIL_LIMIT. Taking is cheap
   * and is acknowledged at once, so a flood streams at the network's pace;
   * drawing (HTML, layout) costs far more and happens at most a few times a
   * second while output floods. Of parts dropped before they were drawn,
   * AnsiUp still reads the colour codes (SGR), so a colour they set carries
   * on into what is drawn. */
  Cell.prototype.take = function (text, nbytes) {
    if (!text && !nbytes) return;
    if (this.headBytes < HEAD_LIMIT) {
      this.headQueue.push(text);
      this.headBytes += nbytes;
      this.queuedHead += nbytes;
    } else {
      this.tailQueue.push([text, nbytes]);
      this.queuedTail += nbytes;
      while (this.queuedTail > TAIL_LIMIT && this.tailQueue.length > 1) {
        var dropped = this.tailQueue.shift();
        this.ansi.ansi_to_html((dropped[0].match(SGR) || []).join(""));
        this.queuedTail -= dropped[1];
        this.omitted += dropped[1];
      }
    }
    this.schedule();
  };

  /* Acknowledged at once, not on a timer: a hidden tab's timers are slowed
   * to once a second or once a minute, and the run would wait on them. */
  Cell.prototype.ack = function () {
    socket.emit("ack", page.about({ run: this.runId, end: this.takenEnd }));
  };

  /* Draw on an animation frame, but after a costly draw wait four times as
   * long as it took, so drawing takes at most a fifth of the time. A hidden
   * tab gets no animation frames; it draws every 100 ms at most (browsers
   * slow its timers further), and at once when it is shown again. */
  Cell.prototype.schedule = function () {
    if (this.scheduled) return;
    this.scheduled = true;
    var self = this, go = function () { self.render(); };
    var wait = Math.max(0, this.renderAt - performance.now());
    if (document.hidden) setTimeout(go, Math.max(wait, 100));
    else setTimeout(function () { requestAnimationFrame(go); }, wait);
  };

  Cell.prototype.render = function () {
    this.scheduled = false;
    if (!this.headQueue.length && !this.tailQueue.length) return;
    var t0 = performance.now(), html = this.html.bind(this);
    this.outputEl.hidden = false;
    if (this.headQueue.length) {
      this.head.add(this.headQueue.join(""), this.queuedHead, html);
      this.headQueue = []; this.queuedHead = 0;
    }
    if (this.tailQueue.length) {
      this.tail.add(this.tailQueue.map(function (p) { return p[0]; }).join(""), this.queuedTail, html);
      this.tailQueue = []; this.queuedTail = 0;
      this.omitted += this.tail.drop(TAIL_LIMIT);
    }
    this.showOmitted();
    this.toEnd();
    this.renderAt = performance.now() + 4 * (performance.now() - t0);
  };

  Cell.prototype.html = function (text) {
    return this.ansi.ansi_to_html(text.replace(/\r\n/g, "\n"));
  };

  Cell.prototype.toEnd = function () {
    if (this.follow) this.outputEl.scrollTop = this.outputEl.scrollHeight;
  };

  Cell.prototype.showOmitted = function () {
    if (!this.omitted) return;
    this.omittedEl.hidden = false;
    this.omittedEl.querySelector(".n").textContent = this.omitted.toLocaleString();
  };

  Cell.prototype.onSnapshot = function (msg) {
    this.clearOutput();
    var head = bytes(msg.head);   // the server's head, of the size it keeps
    this.take(new TextDecoder().decode(head), head.byteLength);
    this.headBytes = HEAD_LIMIT;  // full: what follows is the tail
    this.omitted = msg.omitted;
    this.take(this.decoder.decode(bytes(msg.tail), { stream: true }), msg.end - head.byteLength - msg.omitted);
    this.recvSeq = msg.seq; this.recvEnd = this.takenEnd = msg.end;
    this.ack();
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
    var live = this.running;   // else the end of a run that had ended before the page loaded, replayed
    this.running = false; this.ended = true;
    this.el.dataset.status = end.status;
    this.result = verdict(end, this);
    this.checksEl.textContent = "";
    var self = this;
    (end.checks || []).forEach(function (c) { self.onCheck(c); });
    this.show();
    if (!live) return;
    if (this.result.state === "failed") dropQueue("step " + this.index + " did not pass");
    pump();
    document.body.dispatchEvent(new CustomEvent("labnb-run-ended", { bubbles: true }));
  };

  document.querySelectorAll(".cell").forEach(function (el, i) {
    var cell = new Cell(el, i + 1);
    cells.set(cell.step, cell);
    var end = el.dataset.end && JSON.parse(el.dataset.end);
    if (end) {   // its last run, as recorded: its output is replayed once the socket connects
      cell.reset(el.dataset.run);
      cell.el.dataset.status = end.status;
      cell.result = verdict(end, cell);
      cell.show();
    } else if (el.dataset.run) cell.started(el.dataset.run);
    else cell.show();
  });
  // Each step's state is told once all the page's scripts are there to hear it (deferred ones run before this).
  function announceAll() {
    announce = tell;
    cells.forEach(function (cell) { tell(cell, cell.section.dataset.state); });
  }
  if (document.readyState === "complete") announceAll();
  else document.addEventListener("DOMContentLoaded", announceAll);

  var runAll = document.querySelector("button.run-all");
  if (runAll) runAll.addEventListener("click", function () { queueSteps(Array.from(cells.values())); });
  function hostChanged() {
    if (runAll) runAll.disabled = !page.hostReady();
    cells.forEach(function (cell) { cell.buttons(); });
    pump();
  }
  hostChanged();

  page.onConnect(function () {
    socket.emit("open", page.about({ lab: page.labId }), function (reply) {
      if (!reply || reply.error) return;
      reply.running.forEach(function (r) {
        var cell = cells.get(r.step);
        if (cell && cell.runId !== r.run) cell.started(r.run);
      });
      cells.forEach(function (cell) { if (cell.runId && !cell.ended) cell.attach(); });
      pump();
    });
  });
  /* A run asked for as the connection went has no answer coming: it goes back to the queue's head, and
   * is asked for again unless the server, on connecting again, says it runs. */
  page.onDisconnect(function () {
    var cell = starting;
    if (!cell) return;
    starting = null;
    cell.queued = true;
    queue.unshift(cell);
    cell.show();
  });
  socket.on("run_started", function (msg) {
    var cell = cells.get(msg.step);
    if (!cell) return;
    if (cell.runId === msg.run) return;
    var ours = starting === cell;
    cell.started(msg.run);
    if (!ours) cell.attach();   // another tab started it
  });
  socket.on("output", function (msg) { var c = byRun.get(msg.run); if (c) c.onOutput(msg); });
  socket.on("snapshot", function (msg) { var c = byRun.get(msg.run); if (c) c.onSnapshot(msg); });
  socket.on("check", function (msg) { var c = byRun.get(msg.run); if (c) c.onCheck(msg); });
  socket.on("end", function (msg) { var c = byRun.get(msg.run); if (c) c.onEnd(msg); });
  page.onHostChange(hostChanged);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) cells.forEach(function (cell) { cell.scheduled = false; cell.schedule(); });
  });

  /* Shift+Enter in a step runs it (or queues it) and moves on to the next
   * step, as in a Jupyter notebook (a click in a step's text puts the focus there). */
  page.main.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) return;
    var step = e.target.closest && e.target.closest("section.step");
    if (!step) return;
    e.preventDefault();
    var cell = cells.get(step.querySelector(".cell").dataset.step);
    if (cell && !cell.runBtn.disabled) cell.request();
    var next = step.nextElementSibling;
    while (next && !(next.matches && next.matches("section.step"))) next = next.nextElementSibling;
    if (next) next.focus();
  });

})();
