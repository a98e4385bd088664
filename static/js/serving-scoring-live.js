(function () {
  const live = JSON.parse(document.getElementById("job-live").textContent);
  const terminal = ["succeeded", "failed", "cancelled"];
  const api = document.getElementById("live-state").dataset.api;
  const fmt = (s) => { if (s === null || s === undefined) return "—"; s = Math.round(s); const m = Math.floor(s / 60), r = s % 60; return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : (m ? `${m} min ${r} s` : `${r} s`); };
  function show(job) {
    const pct = Math.round((job.progress || 0) * 100);
    const bar = document.getElementById("job-progress");
    bar.style.width = pct + "%"; bar.textContent = pct + "%";
    document.getElementById("job-rows").textContent = (job.rows ?? job.rows_done ?? 0).toLocaleString("en-US");
    document.getElementById("job-eta").textContent = fmt(job.eta_s);
    if (job.state !== live.state) { live.state = job.state; location.reload(); }
  }
  if (terminal.includes(live.state)) return;
  async function poll() {
    try {
      const response = await fetch(api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) show(await response.json());
      else document.getElementById("live-state").textContent = response.status === 404 ? "no longer visible" : "retrying…";
    } catch (e) { document.getElementById("live-state").textContent = "retrying…"; }
    if (!terminal.includes(live.state)) setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
