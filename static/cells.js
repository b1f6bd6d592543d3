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
 * rest is in the full log, downloaded from the server. */
(function () {
  "use strict";
  var page = window.labnb;
  if (!page) return;
  var socket = page.socket, bytes = page.bytes;
  var HEAD_LIMIT = 1 << 20, TAIL_LIMIT = 1 << 20, BLOCK_CHARS = 64 << 10;
  var SGR = /\x1b\[[0-9;]*m/g;   // colour and style codes
  var cells = new Map();   // step id -> Cell
  var byRun = new Map();   // run id -> Cell

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

  function Cell(el) {
    this.el = el;
    this.step = el.dataset.step;
    this.runBtn = el.querySelector("button.run");
    this.stopBtn = el.querySelector("button.stop");
    this.statusEl = el.querySelector(".status");
    this.problemEl = el.querySelector(".problem");
    this.outputEl = el.querySelector(".output");
    this.head = new Pane(el.querySelector("pre.head"));
    this.tail = new Pane(el.querySelector("pre.tail"));
    this.omittedEl = el.querySelector(".omitted");
    this.checksEl = el.querySelector(".checks");
    this.runId = null;
    this.clearOutput();
    this.running = false;
    this.ended = true;
    var self = this, o = this.outputEl;
    this.runBtn.addEventListener("click", function () { self.start(); });
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
    this.stopBtn.addEventListener("click", function () { self.stop(); });
  }

  Cell.prototype.reset = function (runId) {
    if (this.runId) byRun.delete(this.runId);
    this.runId = runId;
    byRun.set(runId, this);
    this.recvSeq = -1; this.recvEnd = 0; this.scheduled = false;
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

  Cell.prototype.setStatus = function (status, text) {
    this.el.dataset.status = status;
    this.statusEl.textContent = text;
  };

  Cell.prototype.problem = function (text) {
    this.problemEl.textContent = text;
    this.problemEl.hidden = !text;
  };

  Cell.prototype.buttons = function () {
    this.runBtn.disabled = this.running || !page.hostReady() || !!page.watching;
    this.stopBtn.disabled = !this.running || !!page.watching;
  };

  Cell.prototype.start = function () {
    var self = this;
    this.problem("");
    this.runBtn.disabled = true;
    this.expecting = true;   // the server attaches this tab to the run it starts
    socket.emit("run", { lab: page.labId, step: this.step }, function (reply) {
      self.expecting = false;
      if (reply && reply.error) { self.problem(reply.error); self.buttons(); }
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
    this.running = false; this.ended = true;
    this.setStatus(end.status, page.describe(end));
    this.checksEl.textContent = "";
    var self = this;
    (end.checks || []).forEach(function (c) { self.onCheck(c); });
    this.buttons();
    document.body.dispatchEvent(new CustomEvent("labnb-run-ended", { bubbles: true }));
  };

  document.querySelectorAll(".cell").forEach(function (el) {
    var cell = new Cell(el);
    cells.set(cell.step, cell);
    if (el.dataset.run) cell.reset(el.dataset.run);
    else cell.buttons();
  });

  page.onConnect(function () {
    socket.emit("open", page.about({ lab: page.labId }), function (reply) {
      if (!reply || reply.error) return;
      reply.running.forEach(function (r) {
        var cell = cells.get(r.step);
        if (cell && cell.runId !== r.run) cell.reset(r.run);
      });
      cells.forEach(function (cell) { if (cell.runId && !cell.ended) cell.attach(); });
    });
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
  page.onHostChange(function () { cells.forEach(function (cell) { cell.buttons(); }); });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) cells.forEach(function (cell) { cell.scheduled = false; cell.schedule(); });
  });

  /* Shift+Enter in a step runs it and moves on to the next step, as in a
   * Jupyter notebook (a click in a step's text puts the focus there). */
  page.main.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || !e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) return;
    var step = e.target.closest && e.target.closest("section.step");
    if (!step) return;
    e.preventDefault();
    var cell = cells.get(step.querySelector(".cell").dataset.step);
    if (cell && !cell.runBtn.disabled) cell.start();
    var next = step.nextElementSibling;
    while (next && !(next.matches && next.matches("section.step"))) next = next.nextElementSibling;
    if (next) next.focus();
  });

})();
