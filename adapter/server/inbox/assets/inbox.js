// The inbox's only script (docs/inbox.md), served from the service's own
// origin. The pages work without it (forms post and redirect); with it:
// answers are shown in place, each card follows the approval as it changes
// elsewhere (server-sent events), and pending cards count down to expiry.
/* global document, window, EventSource, URLSearchParams, FormData */
(function () {
  "use strict";
  var body = document.body;
  // The server's clock, as read when the page was made: countdowns follow it, not this device's.
  var skewMs = Number(body.dataset.serverNow || Date.now()) - Date.now();
  var busy = {};

  function cardOf(id) {
    return document.querySelector('article.card[data-decision-id="' + id + '"]');
  }

  function fromHtml(text) {
    return cardsFromHtml(text)[0] || null;
  }

  // Every card in an answer (an amendment answers the original's card and the amended call's).
  function cardsFromHtml(text) {
    var t = document.createElement("template");
    t.innerHTML = text.trim();
    return Array.prototype.filter.call(t.content.children, function (el) {
      return el.matches("article.card[data-decision-id]");
    });
  }

  function replace(old, fresh, focus) {
    old.replaceWith(fresh);
    if (focus) {
      var result = fresh.querySelector(".result");
      if (result) result.focus();
    }
  }

  function remaining(ms) {
    if (ms <= 0) return "expired";
    var s = Math.ceil(ms / 1000);
    if (s < 60) return "in " + s + " s";
    if (s < 3600) return "in " + Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return "in " + Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  }

  function expire(card) {
    card.dataset.status = "expired";
    card.classList.remove("status-pending");
    card.classList.add("status-expired");
    var status = card.querySelector("[data-status-text]");
    if (status) status.textContent = "Expired";
    var form = card.querySelector("form.answer");
    if (form) form.remove();
    var result = card.querySelector(".result");
    if (result) result.textContent = "Expired: this approval can no longer be answered.";
    // The server has the last word (an answer may have landed at the last moment).
    window.setTimeout(function () {
      refresh(card.dataset.decisionId, false);
    }, 1500);
  }

  function tick() {
    var now = Date.now() + skewMs;
    document.querySelectorAll('article.card[data-status="pending"]').forEach(function (card) {
      var left = Date.parse(card.dataset.expiresAt) - now;
      var el = card.querySelector("[data-countdown]");
      if (el) el.textContent = remaining(left);
      if (left <= 0 && !busy[card.dataset.decisionId]) expire(card);
    });
  }

  /** Fetch a card again; replace it when its status changed (or `always`). */
  function refresh(id, always) {
    return window
      .fetch("/approvals/" + encodeURIComponent(id) + "/card", { credentials: "same-origin", headers: { accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (text) {
        var fresh = text && fromHtml(text);
        if (!fresh || busy[id]) return;
        var old = cardOf(id);
        if (old) {
          if (always || old.dataset.status !== fresh.dataset.status) {
            if (old.dataset.status === "pending" && fresh.dataset.status !== "pending") {
              var line = fresh.querySelector(".result");
              if (line) line.textContent = "Already answered: " + line.textContent;
            }
            replace(old, fresh, false);
          }
        } else if (body.dataset.view === "inbox" && fresh.dataset.status === "pending") {
          var list = document.querySelector("[data-cards]");
          if (list) {
            list.prepend(fresh);
            var empty = document.querySelector(".empty");
            if (empty) empty.hidden = true;
          }
        }
      })
      .catch(function () {
        // Offline for a moment: the next event or tick tries again.
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("article.card form.answer, article.card form.amend")) return;
    var card = form.closest("article.card");
    var id = card.dataset.decisionId;
    var submitter = event.submitter;
    var action = (submitter && submitter.getAttribute("formaction")) || form.getAttribute("action");
    event.preventDefault();
    if (busy[id]) return;
    busy[id] = true;
    // Read before disabling: a disabled control is left out of the form's data.
    var bodyText = new URLSearchParams(new FormData(form)).toString();
    form.querySelectorAll("button, textarea").forEach(function (el) {
      el.disabled = true;
    });
    window
      .fetch(action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/x-www-form-urlencoded", "x-veto-fragment": "1" },
        body: bodyText,
      })
      .then(function (response) {
        return response.text().then(function (text) {
          return { ok: response.ok, text: text };
        });
      })
      .then(function (r) {
        busy[id] = false;
        var cards = r.ok ? cardsFromHtml(r.text) : [];
        var fresh = cards[0];
        if (fresh && fresh.dataset.decisionId === id) {
          replace(card, fresh, true);
          // The amended call's card follows the original's (or replaces the one the event stream added).
          var after = fresh;
          cards.slice(1).forEach(function (next) {
            var there = cardOf(next.dataset.decisionId);
            if (there) there.remove();
            after.after(next);
            after = next;
          });
        } else {
          form.querySelectorAll("button, textarea").forEach(function (el) {
            el.disabled = false;
          });
          var result = card.querySelector(".result");
          if (result) result.textContent = "Not done: the answer was refused. Reload the page and try again.";
        }
      })
      .catch(function () {
        busy[id] = false;
        form.querySelectorAll("button, textarea").forEach(function (el) {
          el.disabled = false;
        });
        var result = card.querySelector(".result");
        if (result) result.textContent = "Not sent: the service could not be reached. Try again.";
      });
  });

  if (body.dataset.view === "inbox" || body.dataset.view === "approval") {
    tick();
    window.setInterval(tick, 1000);
    if (typeof EventSource === "function") {
      var events = null;
      var connect = function () {
        events = new EventSource("/events");
        // Once the stream is open (and again after each reconnect), re-read the pending cards:
        // whatever changed before it opened was never sent on it.
        events.addEventListener("open", function () {
          body.dataset.live = "1";
          document.querySelectorAll('article.card[data-status="pending"]').forEach(function (card) {
            refresh(card.dataset.decisionId, false);
          });
        });
        events.addEventListener("error", function () {
          delete body.dataset.live;
        });
        events.addEventListener("approval", function (event) {
          var data;
          try {
            data = JSON.parse(event.data);
          } catch (e) {
            return;
          }
          var card = cardOf(data.decisionId);
          if (card ? card.dataset.status === "pending" && data.status !== "pending" : data.status === "pending") {
            refresh(data.decisionId, false);
          }
        });
        events.addEventListener("refresh", function () {
          document.querySelectorAll('article.card[data-status="pending"]').forEach(function (card) {
            refresh(card.dataset.decisionId, false);
          });
        });
        // The reviewer opened more pages than the service keeps streams for, and this one is the
        // oldest: it stops listening (reconnecting would end another of their pages' streams) until
        // it is shown again.
        events.addEventListener("evicted", function () {
          events.close();
          events = null;
          delete body.dataset.live;
        });
      };
      connect();
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "visible" && events === null) connect();
      });
      window.addEventListener("pagehide", function () {
        if (events !== null) events.close();
      });
    }
  }
})();
