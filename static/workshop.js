/* labnb: a workshop learner's part of a page (templates/_room.html): its
 * countdown ticks each second; a visible tab tells the server when it is shown, then every minute
 * (or more often, for a short idle limit: data-beat) that the learner is here (a hidden one does not: it only polls, which
 * shows that a tab is open), and on the lab page the room's news (the
 * banner, a hand seen, a warning, the place ended, a reset of the lab host) refreshes it at once. */
(function () {
  "use strict";
  var csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
  var started = Date.now();

  function text(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + (h ? "" : s + " s");
  }

  function tick() {
    document.querySelectorAll("#room .countdown[data-left]").forEach(function (el) {
      if (!el.dataset.until) el.dataset.until = String(Date.now() + Number(el.dataset.left) * 1000);
      el.textContent = text((Number(el.dataset.until) - Date.now()) / 1000);
    });
  }

  function here() {
    if (document.visibilityState !== "visible") return;
    fetch("/workshop/here", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  }

  /* The server writes its times in UTC; the learner reads them in their own clock's (the instructor's reset). */
  function localTimes() {
    document.querySelectorAll("#room time.local-time[data-at]").forEach(function (el) {
      el.textContent = new Date(Number(el.dataset.at) * 1000)
        .toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
      el.removeAttribute("data-at");
    });
  }

  setInterval(tick, 1000);
  tick();
  localTimes();
  document.body.addEventListener("htmx:afterSwap", localTimes);
  var room = document.getElementById("room");
  setInterval(here, 1000 * Number(room ? room.dataset.beat : 60));
  here();   // shown now: a slow page load must not leave the learner idle until the first beat
  document.addEventListener("visibilitychange", function () { if (Date.now() - started > 1000) here(); });
  if (window.labnb) {
    window.labnb.socket.on("place", function (news) {
      htmx.trigger(document.body, "labnb-room");
      var host = document.getElementById("host");
      if (news && news.host && host) htmx.ajax("GET", host.dataset.status, { target: "#host", swap: "outerHTML" });
    });
  }
})();
