/* labnb: a workshop learner's lab page hears of their room (the banner,
 * their hand seen, their place ended) on the page's own connection and
 * refreshes that part (templates/_room.html) at once. */
(function () {
  "use strict";
  if (!window.labnb) return;
  window.labnb.socket.on("room", function () { htmx.trigger(document.body, "labnb-room"); });
})();
