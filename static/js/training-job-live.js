(function () {
  const live = JSON.parse(document.getElementById("job-live").textContent);
  const terminal = ["succeeded", "failed", "cancelled"];
  const fmt = (s) => { if (s === null || s === undefined) return "—"; s = Math.round(s); const m = Math.floor(s / 60), r = s % 60; return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`; };
  function show(msg) {
    const pct = Math.round((msg.progress || 0) * 100);
    const bar = document.getElementById("job-progress");
    bar.style.width = pct + "%"; bar.textContent = pct + "%";
    eta = terminal.includes(msg.state) ? null : msg.eta_s; etaAt = Date.now(); tick();
    document.getElementById("job-epochs").textContent = msg.epochs_completed;
    document.getElementById("job-worker").textContent = msg.worker || "—";
    if (msg.attempts) document.getElementById("job-attempt").textContent = `attempt ${msg.attempts}`;
    if (msg.state !== live.state) {
      // Leaving the queue or ending: reload, so the start time, warnings and results are the server's.
      const reload = terminal.includes(msg.state) || live.state === "queued";
      live.state = msg.state;
      if (reload) setTimeout(() => location.reload(), 500); else document.getElementById("job-state").textContent = msg.state;
    }
  }
  let eta = null, etaAt = Date.now();
  function tick() {  // count down between epoch updates
    const left = eta === null || eta === undefined ? null : Math.max(0, eta - (Date.now() - etaAt) / 1000);
    document.getElementById("job-eta").textContent = fmt(left);
  }
  setInterval(tick, 1000);
  show(live);
  if (terminal.includes(live.state)) { document.getElementById("live-state").textContent = "finished"; return; }
  let delay = 500;
  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/training/jobs/${live.job}/`);
    ws.onopen = () => { delay = 500; document.getElementById("live-state").textContent = "live"; };
    ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === "job") show(m); };
    ws.onclose = (e) => { document.getElementById("live-state").textContent = e.code === 4403 ? "not allowed" : "reconnecting…"; if (e.code !== 4403) setTimeout(connect, delay = Math.min(delay * 2, 10000)); };
  }
  connect();
})();
