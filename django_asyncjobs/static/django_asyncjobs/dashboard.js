/*
 * django-asyncjobs admin dashboard: refreshes the figures every few seconds by
 * fetching the figures fragment (same URL parameters as the page) and swapping
 * it in. Pauses while the tab is hidden; gives up on an answer that is not the
 * fragment (logged out, permission withdrawn). No dependencies.
 */
(function () {
  "use strict";

  var root = document.getElementById("asyncjobs-dashboard");
  if (!root || !window.fetch) {
    return;
  }
  var url = root.getAttribute("data-refresh-url") + window.location.search;
  var seconds = Number(root.getAttribute("data-refresh-seconds")) || 5;
  var timer = null;
  var pending = false;
  var stopped = false;

  function stop() {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
  }

  function start() {
    if (timer === null && !stopped) {
      timer = window.setInterval(refresh, seconds * 1000);
    }
  }

  function refresh() {
    if (pending || stopped || document.hidden) {
      return;
    }
    pending = true;
    window
      .fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          stopped = true;
          stop();
          root.classList.add("asyncjobs-stale");
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          root.innerHTML = html;
          root.classList.remove("asyncjobs-stale");
        }
      })
      .catch(function () {
        root.classList.add("asyncjobs-stale"); // network trouble: try again at the next tick
      })
      .then(function () {
        pending = false;
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      stop();
    } else {
      refresh();
      start();
    }
  });
  if (!document.hidden) {
    start();
  }
})();
