/* django-asyncjobs admin: keep the progress bars and status badges of unfinished jobs
   up to date, one request per second for the whole page, while the tab is visible. */
(function () {
  "use strict";
  var FINISHED = ["succeeded", "failed", "cancelled"];
  var INTERVAL = 1000;

  function unfinishedCells() {
    return Array.prototype.filter.call(
      document.querySelectorAll(".asyncjobs-progress-cell[data-job]"),
      function (cell) { return FINISHED.indexOf(cell.dataset.status) === -1; }
    );
  }

  function update(cell, job) {
    cell.dataset.status = job.status;
    var bar = cell.querySelector(".asyncjobs-progress");
    bar.title = job.message || job.progress + "%";
    bar.firstElementChild.style.width = job.progress + "%";
    cell.querySelector(".asyncjobs-progress-text").textContent = job.progress + "%";
    document.querySelectorAll('[data-job-status="' + cell.dataset.job + '"]').forEach(function (badge) {
      badge.className = "asyncjobs-status asyncjobs-status-" + job.status;
      badge.textContent = job.label;
    });
  }

  function poll() {
    var cells = unfinishedCells();
    if (!cells.length) { return; }
    if (document.hidden) { setTimeout(poll, INTERVAL); return; }
    var query = cells.map(function (cell) { return "id=" + encodeURIComponent(cell.dataset.job); }).join("&");
    fetch(cells[0].dataset.url + "?" + query, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : {jobs: {}}; })
      .then(function (data) {
        cells.forEach(function (cell) {
          var job = data.jobs[cell.dataset.job];
          if (job) { update(cell, job); }
        });
      })
      .catch(function () { /* try again at the next tick */ })
      .then(function () { setTimeout(poll, INTERVAL); });
  }

  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, INTERVAL); });
})();
