// Status and approval changes pushed by the server (server-sent events): the runs list, and the
// page of one run that is still queued or running (with its job's shard table).
"use strict";
(function () {
  var one = document.querySelector("[data-live-run]");
  if (!one || !window.EventSource) { return; }
  var runId = one.getAttribute("data-live-run");
  var shards = document.getElementById("shards");
  var pending = null;
  // A job event (a shard done or failed, the job collected) fetches the shard table again
  // (htmx, hx-trigger="nsp-shards"): at most one fetch per 250 ms however many shards finish,
  // and always one after the last event.
  function refreshShards() {
    if (!shards || pending) { return; }
    pending = window.setTimeout(function () {
      pending = null;
      shards.dispatchEvent(new Event("nsp-shards"));
    }, 250);
  }
  var source = new EventSource("/live/runs/" + encodeURIComponent(runId) +
                               "?after=" + encodeURIComponent(one.getAttribute("data-live-after")));
  source.addEventListener("ready", function () { one.setAttribute("data-live", "connected"); });
  source.addEventListener("run", function (event) {
    var change = JSON.parse(event.data);
    if (change.run_id !== runId) { return; }
    if (change.action.indexOf("job.") === 0) { refreshShards(); }
    if (change.approval_state) {
      var approval = one.querySelector(".approval");
      approval.textContent = change.approval_state;
      approval.setAttribute("data-approval", change.approval_state);
    }
    if (!change.status) { return; }
    var status = one.querySelector(".status");
    status.textContent = change.status;
    status.setAttribute("data-status", change.status);
    document.getElementById("live-status").textContent = "The run is now " + change.status + ".";
    if (["succeeded", "failed", "cancelled"].indexOf(change.status) >= 0) {
      refreshShards();
      document.getElementById("run-ended").hidden = false;
      source.close();
    }
  });
  source.addEventListener("error", function () { one.setAttribute("data-live", "reconnecting"); });
})();
(function () {
  var table = document.getElementById("runs");
  if (!table || !table.hasAttribute("data-live-project") || !window.EventSource) { return; }
  var project = table.getAttribute("data-live-project");
  var after = table.getAttribute("data-live-after") || "0";
  var announce = document.getElementById("live-status");
  var fresh = document.getElementById("new-runs");
  var url = "/live/runs?project=" + encodeURIComponent(project) + "&after=" + encodeURIComponent(after);
  var source = new EventSource(url);
  source.addEventListener("ready", function () { table.setAttribute("data-live", "connected"); });
  source.addEventListener("run", function (event) {
    var change = JSON.parse(event.data);
    var row = table.querySelector('tr[data-run-id="' + CSS.escape(change.run_id) + '"]');
    if (!row) {
      if (change.action === "run.created" && !table.hasAttribute("data-deep")) { fresh.hidden = false; }
      return;
    }
    if (change.status) {
      var status = row.querySelector(".status");
      status.textContent = change.status;
      status.setAttribute("data-status", change.status);
      announce.textContent = "Run " + change.run_id.slice(0, 13) + " is now " + change.status + ".";
    }
    if (change.approval_state) {
      var approval = row.querySelector(".approval");
      approval.textContent = change.approval_state;
      approval.setAttribute("data-approval", change.approval_state);
    }
  });
  source.addEventListener("error", function () { table.setAttribute("data-live", "reconnecting"); });
})();
