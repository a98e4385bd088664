// Experiment page: live status/progress/metric cells for the runs on this page, compare picker.
(function () {
  const experimentId = JSON.parse(document.getElementById("experiment-id").textContent);
  const table = document.getElementById("runs-table");
  const compareBtn = document.getElementById("compare-btn");
  const liveState = document.getElementById("live-state");
  const statusClass = { running: "primary", finished: "success", failed: "danger", killed: "warning", queued: "secondary" };

  const picks = () => table.querySelectorAll(".run-pick:checked").length;
  table.addEventListener("change", () => {
    const n = picks();
    compareBtn.disabled = n < 2 || n > 20;
    compareBtn.textContent = n ? `Compare selected (${n})` : "Compare selected";
  });

  const fmt = window.portal.num;  // numbers as the server writes them
  const row = (runId) => table.querySelector(`tr[data-run="${runId}"]`);

  function setMetric(runId, key, value) {
    const r = row(runId);
    if (!r) return;
    for (const cell of r.querySelectorAll("td[data-metric]")) {
      if (cell.dataset.metric === key) { cell.textContent = fmt(value); cell.classList.add("table-info"); setTimeout(() => cell.classList.remove("table-info"), 600); }
    }
  }

  function setStatus(msg) {
    const r = row(msg.run);
    if (!r) return;
    const badge = r.querySelector(".run-status");
    badge.textContent = msg.status;
    badge.className = `badge run-status text-bg-${statusClass[msg.status] || "secondary"}`;
    const stale = r.querySelector(".run-stale");
    if (msg.stale && msg.status === "running" && !stale) {
      const flag = document.createElement("span");
      flag.className = "badge text-bg-warning run-stale ms-1";
      flag.title = "No log, progress or heartbeat from this run's client for a while: not counted as training.";
      flag.textContent = "stale";
      badge.after(flag);
    } else if (!(msg.stale && msg.status === "running") && stale) stale.remove();
    if (msg.progress !== null && msg.progress !== undefined) r.querySelector(".run-progress").style.width = `${Math.round(msg.progress * 100)}%`;
  }

  portal.openLive(`/ws/experiments/${experimentId}/`, (msg) => {
    if (msg.type === "subscribed") { liveState.textContent = "live"; liveState.className = "badge text-bg-success"; }
    else if (msg.type === "metric") setMetric(msg.run, msg.key, msg.value);
    else if (msg.type === "metrics") msg.points.forEach((p) => setMetric(msg.run, p.key, p.value));
    else if (msg.type === "status") setStatus(msg);
  });
  window.addEventListener("offline", () => { liveState.textContent = "offline"; liveState.className = "badge text-bg-secondary"; });
})();
