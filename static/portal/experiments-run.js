// Run page: one Plotly chart per metric, points appended live from /ws/runs/{id}/ (no reload),
// status/progress/log live, and a catch-up read of missed points after every reconnect.
(function () {
  const live = JSON.parse(document.getElementById("run-live").textContent);
  const runId = live.run;
  const MAX_POINTS = 2000;       // server-side downsampling for the initial read and catch-up
  const KEEP_POINTS = 20000;     // live points kept per chart before the oldest scroll out
  const charts = {};             // key -> {div, lastStep, loading}
  const pending = {};            // key -> {x: [], y: []} waiting for the next animation frame
  const statusClass = { running: "primary", finished: "success", failed: "danger", killed: "warning", queued: "secondary" };
  const liveState = document.getElementById("live-state");
  let opened = false;

  const seriesUrl = (key, extra) => `/api/v1/runs/${runId}/metrics/${key.split("/").map(encodeURIComponent).join("/")}?${extra}`;
  const getJSON = async (url) => {
    const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  };

  function chartFor(key) {
    if (charts[key]) return charts[key];
    const system = key.startsWith("system/");
    const container = document.getElementById(system ? "system-charts" : "charts");
    const placeholder = document.getElementById(system ? "no-system" : "no-metrics");
    if (placeholder) placeholder.remove();
    const col = document.createElement("div");
    col.className = system ? "col-md-6 col-xxl-3" : "col-md-6";
    const div = document.createElement("div");
    div.className = "card shadow-sm p-1";
    div.style.height = system ? "220px" : "300px";
    col.appendChild(div);
    // keep charts in key order
    const after = [...container.children].find((c) => c.dataset.key && c.dataset.key > key);
    col.dataset.key = key;
    container.insertBefore(col, after || null);
    Plotly.newPlot(div, [{ x: [], y: [], type: "scatter", mode: "lines", line: { width: 1.5 }, name: key }], {
      title: { text: key, font: { size: 13 } }, margin: { l: 50, r: 15, t: 35, b: 35 },
      xaxis: { title: { text: "step" } }, uirevision: key,
    }, { responsive: true, displaylogo: false });
    charts[key] = { div, lastStep: -1, loading: null, buffer: [] };
    return charts[key];
  }

  async function load(key, afterStep) {
    const chart = chartFor(key);
    const extra = afterStep === undefined ? `max_points=${MAX_POINTS}` : `max_points=${MAX_POINTS}&after_step=${afterStep}`;
    const data = await getJSON(seriesUrl(key, extra));
    if (afterStep === undefined) {
      Plotly.react(chart.div, [{ x: data.steps, y: data.values, type: "scatter", mode: data.total > 60 ? "lines" : "lines+markers", marker: { size: 4 }, line: { width: 1.5 }, name: key }], chart.div.layout);
    } else if (data.steps.length) {
      Plotly.extendTraces(chart.div, { x: [data.steps], y: [data.values] }, [0], KEEP_POINTS);
    }
    if (data.steps.length) chart.lastStep = Math.max(chart.lastStep, data.steps[data.steps.length - 1]);
    if (data.downsampled) document.getElementById("chart-note").textContent = `Showing ${data.returned} of ${data.total} points per long series (min/max buckets keep spikes).`;
  }

  function ensureLoaded(key, afterStep) {
    // Points that arrive while a read is in flight wait in a buffer and are replayed after it.
    const chart = chartFor(key);
    if (chart.loading) return chart.loading;
    chart.buffer = [];
    chart.loading = load(key, afterStep).catch(console.error).then(() => {
      const buffered = chart.buffer;
      chart.loading = null;
      chart.buffer = [];
      buffered.forEach(([step, value]) => queuePoint(key, step, value));
    });
    return chart.loading;
  }

  function queuePoint(key, step, value) {
    const chart = charts[key];
    if (!chart) { ensureLoaded(key); return; }  // a new key: its first read includes this point
    if (chart.loading) { chart.buffer.push([step, value]); return; }
    if (step <= chart.lastStep) return;   // already drawn (catch-up overlap)
    chart.lastStep = step;
    const q = pending[key] || (pending[key] = { x: [], y: [] });
    q.x.push(step); q.y.push(value);
    scheduleDraw();
  }

  let drawScheduled = false;
  function scheduleDraw() {
    if (drawScheduled) return;
    drawScheduled = true;
    requestAnimationFrame(() => {
      drawScheduled = false;
      for (const [key, q] of Object.entries(pending)) {
        Plotly.extendTraces(charts[key].div, { x: [q.x], y: [q.y] }, [0], KEEP_POINTS);
        delete pending[key];
      }
    });
  }

  const fmt = window.portal.num;  // numbers as the server writes them

  // "Latest metrics": each row keeps its raw last step, min and max in data attributes, seeded
  // by the server (summaries over every stored point), so live points only ever extend them.
  // A key first seen live is read from the summaries too, never started from the live points.
  const latestBody = document.querySelector("#latest tbody");
  function latestRow(key) {
    let row = latestBody.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    if (!row) {
      row = document.createElement("tr"); row.dataset.key = key;
      row.innerHTML = '<td class="mono text-break"></td><td class="text-end mono text-nowrap last"></td><td class="text-end mono text-nowrap min"></td><td class="text-end mono text-nowrap max"></td>';
      row.firstChild.textContent = key;
      const after = [...latestBody.children].find((r) => r.dataset.key > key);
      latestBody.insertBefore(row, after || null);
    }
    return row;
  }
  const raw = (text) => (text === undefined || text === "" ? null : Number(text));
  function setLatest(row, step, last, low, high) {
    Object.assign(row.dataset, { lastStep: step, last: last ?? "", min: low ?? "", max: high ?? "" });
    row.querySelector(".last").textContent = fmt(last);
    row.querySelector(".min").textContent = fmt(low ?? undefined);
    row.querySelector(".max").textContent = fmt(high ?? undefined);
  }
  function renderLatest(summaries) {
    for (const s of summaries) if (!s.key.startsWith("system/")) setLatest(latestRow(s.key), s.last_step, s.last, s.min, s.max);
  }
  let summaryRead = null;
  function refreshLatest() {
    if (!summaryRead) summaryRead = getJSON(`/api/v1/runs/${runId}/metrics/`).then(renderLatest).catch(console.error).finally(() => { summaryRead = null; });
    return summaryRead;
  }
  function updateLatest(key, step, value) {
    if (key.startsWith("system/")) return;
    const row = latestBody.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    if (!row) { refreshLatest(); return; }
    const lastStep = Number(row.dataset.lastStep), low = raw(row.dataset.min), high = raw(row.dataset.max);
    const newer = step >= lastStep;
    setLatest(
      row,
      newer ? step : lastStep,
      newer ? value : raw(row.dataset.last),
      value !== null && (low === null || value < low) ? value : low,
      value !== null && (high === null || value > high) ? value : high,
    );
  }

  function setStatus(msg) {
    const holder = document.getElementById("run-status");
    holder.innerHTML = "";
    const badge = document.createElement("span");
    badge.className = `badge run-status text-bg-${statusClass[msg.status] || "secondary"}`;
    badge.textContent = msg.status;
    holder.appendChild(badge);
    if (msg.stale && msg.status === "running") {
      const stale = document.createElement("span");
      stale.className = "badge text-bg-warning run-stale ms-1";
      stale.title = "No log, progress or heartbeat from this run's client for a while: not counted as training.";
      stale.textContent = "stale";
      holder.appendChild(stale);
    } else {
      const note = document.getElementById("stale-note");
      if (note) note.remove();
    }
    if (msg.progress !== null && msg.progress !== undefined) {
      const bar = document.getElementById("run-progress");
      bar.style.width = `${Math.round(msg.progress * 100)}%`;
      bar.textContent = `${Math.round(msg.progress * 100)}%`;
    }
    if (msg.ended_at) document.getElementById("run-ended").textContent = window.portal.when(msg.ended_at);
  }

  function appendLog(text) {
    const pre = document.getElementById("log-tail");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 5;
    if (pre.textContent === "(no output yet)") pre.textContent = "";
    pre.textContent = (pre.textContent + text).slice(-65536);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function catchUp() {
    // After a reconnect: the points logged while we were away, and the current status.
    const keys = await getJSON(`/api/v1/runs/${runId}/metrics/`);
    renderLatest(keys);
    await Promise.all(keys.map((k) => ensureLoaded(k.key, charts[k.key] ? charts[k.key].lastStep : undefined)));
    const run = await getJSON(`/api/v1/runs/${runId}/`);
    setStatus({ status: run.status, progress: run.progress, ended_at: run.ended_at, stale: run.stale });
  }

  (async () => {
    const keys = await getJSON(`/api/v1/runs/${runId}/metrics/`);
    renderLatest(keys);
    await Promise.all(keys.map((k) => ensureLoaded(k.key)));
  })().catch((e) => { console.error(e); document.getElementById("chart-note").textContent = "Could not load the metric series; reload the page to retry."; });

  portal.openLive(`/ws/runs/${runId}/`, (msg) => {
    if (msg.type === "subscribed") { liveState.textContent = "live"; liveState.className = "badge text-bg-success"; }
    else if (msg.type === "metric") { updateLatest(msg.key, msg.step, msg.value); queuePoint(msg.key, msg.step, msg.value); }
    else if (msg.type === "metrics") msg.points.forEach((p) => { updateLatest(p.key, p.step, p.value); queuePoint(p.key, p.step, p.value); });
    else if (msg.type === "status") setStatus(msg);
    else if (msg.type === "log") appendLog(msg.text);
  }, () => {
    if (opened) catchUp().catch(console.error);
    opened = true;
  });
  setInterval(() => {
    // show a lost connection (openLive reconnects with backoff by itself)
    if (liveState.textContent === "live" && !navigator.onLine) { liveState.textContent = "offline"; liveState.className = "badge text-bg-secondary"; }
  }, 5000);
})();
