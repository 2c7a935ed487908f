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

  // A live call's page follows the call: when its status changes (answered, ended) the page
  // reloads, bringing the actions and the recording that fit the new state.
  var summary = document.querySelector("dl.summary[data-live-status]");
  if (summary) {
    var checking = false;
    setInterval(function () {
      if (checking || document.visibilityState !== "visible") return;
      checking = true;
      fetch(location.pathname, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var now = new DOMParser().parseFromString(html, "text/html").querySelector("dl.summary");
          var st = now ? now.getAttribute("data-live-status") : null;
          if (st !== summary.getAttribute("data-live-status")) location.reload();
        })
        .catch(function () {})
        .then(function () { checking = false; });
    }, 2000);
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

  // Agent page: the voice preview speaks what the form holds now (unsaved edits included).
  // Without this script the link plays the saved greeting.
  var preview = document.getElementById("preview");
  var previewPlayer = document.getElementById("preview-player");
  var previewStatus = document.getElementById("preview-status");
  if (preview && previewPlayer) {
    var val = function (id) { var e = document.getElementById(id); return e ? e.value : ""; };
    // With this script the link acts in place: announced and operated as a button (Space too).
    preview.setAttribute("role", "button");
    preview.addEventListener("keydown", function (e) {
      if (e.key === " ") { e.preventDefault(); preview.click(); }
    });
    preview.addEventListener("click", function (e) {
      e.preventDefault();
      var q = new URLSearchParams({ text: val("initial_message"), voice: val("voice"), language: val("language") });
      var url = preview.getAttribute("href") + "?" + q.toString();
      previewStatus.textContent = "Making the preview…";
      previewPlayer.hidden = false;
      previewPlayer.src = url;
      previewPlayer.play().catch(function () {});
    });
    previewPlayer.addEventListener("loadedmetadata", function () {
      previewStatus.textContent = "Preview ready: " + previewPlayer.duration.toFixed(1) + " s.";
    });
    // The audio element does not say why it failed: ask the server for its error message.
    previewPlayer.addEventListener("error", function () {
      if (!previewPlayer.src) return;
      fetch(previewPlayer.src, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? null : r.json(); })
        .then(function (j) {
          previewStatus.textContent = "No preview: " + (j && j.message ? j.message : "the audio could not be played.");
        })
        .catch(function () { previewStatus.textContent = "No preview: the server could not be reached."; });
    });
  }

  // Stereo recording as two waveform lanes (caller top, agent bottom), decoded in the
  // browser; the line follows playback and a click seeks. Decorative: the transcript and the
  // player carry the same information for assistive technology.
  var lanes = document.getElementById("lanes");
  var Ctx = window.AudioContext || window.webkitAudioContext;
  if (lanes && Ctx) {
    fetch(lanes.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.arrayBuffer(); })
      .then(function (buf) { return new Ctx().decodeAudioData(buf); })
      .then(function (audio) {
        var g = lanes.getContext("2d"), w = lanes.width, h = lanes.height;
        var n = Math.min(2, audio.numberOfChannels), lane = h / n, peaks = [];
        for (var ch = 0; ch < n; ch++) {
          var d = audio.getChannelData(ch), step = Math.max(1, Math.floor(d.length / w)), p = [];
          for (var x = 0; x < w; x++) {
            var m = 0;
            for (var i = x * step; i < (x + 1) * step && i < d.length; i++) {
              var v = Math.abs(d[i]);
              if (v > m) m = v;
            }
            p.push(m);
          }
          peaks.push(p);
        }
        var draw = function () {
          g.clearRect(0, 0, w, h);
          peaks.forEach(function (p, ch) {
            g.fillStyle = ch === 0 ? "#137333" : "#0b57d0";
            var mid = lane * ch + lane / 2;
            for (var x = 0; x < w; x++) {
              var a = p[x] * lane / 2;
              g.fillRect(x, mid - a, 1, Math.max(1, 2 * a));
            }
          });
          if (player && audio.duration) {
            g.fillStyle = "#1a1a1a";
            g.fillRect(player.currentTime / audio.duration * w, 0, 2, h);
          }
        };
        draw();
        lanes.dataset.drawn = String(n);
        if (player) {
          player.addEventListener("timeupdate", draw);
          lanes.addEventListener("click", function (e) {
            var r = lanes.getBoundingClientRect();
            player.currentTime = (e.clientX - r.left) / r.width * audio.duration;
          });
        }
      })
      .catch(function () { lanes.hidden = true; });
  }
})();
