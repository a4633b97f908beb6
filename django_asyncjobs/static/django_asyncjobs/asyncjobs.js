/*
 * django-asyncjobs client helper: no dependencies, no build step.
 *
 *   AsyncJobs.submit("/reports/", {body: formData, headers: {"X-CSRFToken": token},
 *                                  onProgress: (job) => ..., onDone: (job, response) => ...})
 *
 * Submits to an @offload view. A 503 is retried after Retry-After (at least) with
 * jittered exponential backoff, up to maxRetries. A 202 is followed by polling its
 * Location (the job's status URL), honouring the Retry-After hints, until the job
 * has finished; then the result is fetched. The same policy as django_asyncjobs.client.
 *
 *   AsyncJobs.pollGroup(groupStatusUrl, {onProgress: (group) => bar.value = group.progress})
 *
 * follows a group of jobs (enqueue_group) until the group and its callback have finished.
 */
(function (root) {
  "use strict";

  var FAILED = ["failed", "cancelled"];

  var DEFAULTS = {
    method: "POST",
    body: undefined,
    headers: {},
    maxRetries: 5,
    baseDelay: 500,
    maxDelay: 30000,
    pollMin: 250,
    pollMax: 10000,
    timeout: 300000,
    onAccepted: null,
    onBusy: null,
    onProgress: null,
    onDone: null,
    onFailed: null,
  };

  function settings(options) {
    var merged = {};
    Object.keys(DEFAULTS).forEach(function (key) {
      merged[key] = options && options[key] !== undefined ? options[key] : DEFAULTS[key];
    });
    return merged;
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function failure(name, message, details) {
    var error = new Error(message);
    error.name = name;
    Object.assign(error, details || {});
    return error;
  }

  /* Exponential backoff with "equal jitter": between half and all of min(max, base * 2**attempt). */
  function backoff(attempt, base, max) {
    var ceiling = Math.min(max, base * Math.pow(2, attempt));
    return ceiling / 2 + Math.random() * ceiling / 2;
  }

  /* Milliseconds from a Retry-After header (seconds or an HTTP date), or null. */
  function retryAfterMs(response) {
    var value = response.headers.get("Retry-After");
    if (!value) { return null; }
    var seconds = Number(value);
    if (!isNaN(seconds)) { return Math.max(0, seconds * 1000); }
    var date = Date.parse(value);
    return isNaN(date) ? null : Math.max(0, date - Date.now());
  }

  function call(callback) {
    if (typeof callback === "function") {
      callback.apply(null, Array.prototype.slice.call(arguments, 1));
    }
  }

  /* fetch(), retrying 503 answers after Retry-After with jittered exponential backoff. */
  async function fetchWithRetries(url, init, opts) {
    for (var attempt = 0; ; attempt++) {
      var response = await fetch(url, init);
      if (response.status !== 503) { return response; }
      var hinted = retryAfterMs(response);
      if (attempt >= opts.maxRetries) {
        var busy = failure("Busy", url + " answered 503 " + (attempt + 1) + " times", {retryAfter: hinted});
        call(opts.onFailed, {error: busy});
        throw busy;
      }
      var delay = Math.max(hinted || 0, backoff(attempt, opts.baseDelay, opts.maxDelay));
      call(opts.onBusy, {attempt: attempt + 1, delay: delay});
      await sleep(delay);
    }
  }

  function jsonInit(opts) {
    return {headers: Object.assign({Accept: "application/json"}, opts.headers), credentials: "same-origin"};
  }

  function fail(opts, error, job) {
    call(opts.onFailed, job || {error: error});
    throw error;
  }

  /* GET statusUrl until finished(document), waiting as its Retry-After says; the last document.
     kind is "job" or "group": it names the errors (JobFailed or GroupFailed for a status answer
     other than 2xx; Timeout with the last document as its job or group). */
  async function follow(statusUrl, opts, finished, kind) {
    var failedName = kind === "group" ? "GroupFailed" : "JobFailed";
    var deadline = Date.now() + opts.timeout;
    for (var attempt = 0; ; attempt++) {
      var response = await fetchWithRetries(statusUrl, jsonInit(opts), opts);
      if (!response.ok) {
        fail(opts, failure(failedName, statusUrl + " answered " + response.status, {status: response.status}));
      }
      var doc = await response.json();
      call(opts.onProgress, doc);
      if (finished(doc)) { return doc; }
      if (Date.now() > deadline) {
        var last = {};
        last[kind] = doc;
        fail(opts, failure("Timeout", kind + " " + doc.id + " still " + doc.status, last));
      }
      var hinted = retryAfterMs(response);
      var delay = hinted !== null ? hinted : opts.pollMin * Math.pow(2, attempt);
      await sleep(Math.min(opts.pollMax, Math.max(opts.pollMin, delay)));
    }
  }

  async function poll(statusUrl, options) {
    var opts = settings(options);
    var job = await follow(statusUrl, opts, function (doc) {
      return doc.status === "succeeded" || FAILED.indexOf(doc.status) !== -1;
    }, "job");
    if (job.status !== "succeeded") {
      fail(opts, failure("JobFailed", "job " + job.id + " " + job.status, {job: job}), job);
    }
    var result = await fetchWithRetries(job.result_url, {headers: opts.headers, credentials: "same-origin"}, opts);
    call(opts.onDone, job, result);
    return {job: job, response: result};
  }

  /* Follow a group of jobs (enqueue_group) until it and its callback finished. */
  async function pollGroup(statusUrl, options) {
    var opts = settings(options);
    var group = await follow(statusUrl, opts, function (doc) { return doc.finished; }, "group");
    var callback = group.callback || {};
    if (group.status === "failed" || FAILED.indexOf(callback.status) !== -1) {
      fail(opts, failure("GroupFailed", "group " + group.id + " " + group.status, {group: group}), group);
    }
    call(opts.onDone, group);
    return {group: group};
  }

  async function submit(url, options) {
    var opts = settings(options);
    var headers = Object.assign({Accept: "application/json"}, opts.headers);
    var init = {method: opts.method, body: opts.body, headers: headers, credentials: "same-origin"};
    var response = await fetchWithRetries(url, init, opts);
    var statusUrl = response.headers.get("Location");
    if (response.status !== 202 || !statusUrl) {
      call(opts.onDone, null, response);
      return {job: null, response: response};
    }
    call(opts.onAccepted, response);
    return poll(statusUrl, options);
  }

  root.AsyncJobs = {submit: submit, poll: poll, pollGroup: pollGroup, backoff: backoff, retryAfterMs: retryAfterMs};
})(typeof window !== "undefined" ? window : globalThis);
