// Switchboard dashboard: progressive enhancement only (every page works without it).
"use strict";
(function () {
  // Confirm destructive forms.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  // Live rows on the first page of /calls: poll the same filters, swap the rows in place.
  var rows = document.getElementById("rows");
  if (rows && rows.dataset.live) {
    var busy = false;
    setInterval(function () {
      if (busy || document.visibilityState !== "visible") return;
      busy = true;
      fetch(rows.dataset.live, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null && html !== rows.innerHTML) rows.innerHTML = html;
        })
        .catch(function () {})
        .then(function () { busy = false; });
    }, 3000);
  }

  // Transcript follows the recording: the current turn is highlighted (and scrolled into
  // view); clicking a turn seeks the player to it.
  var player = document.getElementById("player");
  var turns = Array.prototype.slice.call(document.querySelectorAll(".turn"));
  if (player && turns.length) {
    var current = null;
    var follow = function () {
      var t = player.currentTime, found = null;
      for (var i = 0; i < turns.length; i++) {
        var s = parseFloat(turns[i].dataset.start), e = parseFloat(turns[i].dataset.end);
        if (t >= s && t < Math.max(e, s + 0.5)) found = turns[i];
      }
      if (found !== current) {
        if (current) { current.classList.remove("current"); current.removeAttribute("aria-current"); }
        if (found) {
          found.classList.add("current");
          found.setAttribute("aria-current", "true");
          if (!player.paused) found.scrollIntoView({ block: "nearest" });
        }
        current = found;
      }
    };
    player.addEventListener("timeupdate", follow);
    player.addEventListener("seeked", follow);
    turns.forEach(function (b) {
      b.addEventListener("click", function () {
        player.currentTime = parseFloat(b.dataset.start);
        follow();
      });
    });
  }
})();
