(function () {
  const url = document.getElementById("canary-live").dataset.api;
  const FINAL = {completed: "text-bg-success", rolled_back: "text-bg-danger", aborted: "text-bg-secondary", running: "text-bg-primary"};
  const layout = (title, extra) => Object.assign({margin: {t: 30, r: 50, b: 40, l: 50}, title: {text: title, font: {size: 13}}, legend: {orientation: "h"}}, extra);
  const text = (node, value) => { node.textContent = value; };
  const pct = (v) => v === null || v === undefined ? "—" : (v * 100).toFixed(1) + " %";
  const ms = (v) => v === null || v === undefined ? "—" : v.toFixed(1) + " ms";

  function ramp(c) {
    const x = [c.started_at], y = [c.steps[0]];
    c.evaluations.forEach((e, i) => {
      if (e.verdict === "advance") {
        const next = c.evaluations.slice(i + 1).find((n) => n.step > e.step);
        x.push(e.at); y.push(next ? next.weight : c.weight);
      } else if (e.verdict === "rollback") { x.push(e.at); y.push(0); }
      else if (e.verdict === "complete") { x.push(e.at); y.push(100); }
    });
    x.push(c.finished_at || new Date().toISOString()); y.push(y[y.length - 1]);
    return [{x, y, type: "scatter", mode: "lines", line: {shape: "hv"}, name: "canary %"}];
  }

  function guards(c) {
    const ev = c.evaluations.filter((e) => e.canary);
    const at = ev.map((e) => e.at);
    const rate = (side) => ev.map((e) => e[side].error_rate === null ? null : e[side].error_rate * 100);
    const p95 = (side) => ev.map((e) => e[side].p95_ms);
    return [
      {x: at, y: rate("canary"), name: "canary error %", mode: "lines+markers"},
      {x: at, y: rate("baseline"), name: "baseline error %", mode: "lines+markers"},
      {x: at, y: p95("canary"), name: "canary p95 ms", mode: "lines", line: {dash: "dot"}, yaxis: "y2"},
      {x: at, y: p95("baseline"), name: "baseline p95 ms", mode: "lines", line: {dash: "dot"}, yaxis: "y2"},
    ];
  }

  function side(s) { return s ? `${s.requests.toLocaleString()} / ${pct(s.error_rate)} / ${ms(s.p95_ms)}` : "—"; }

  function draw(c) {
    const state = document.getElementById("canary-state");
    text(state, c.state.replace("_", " ")); state.className = "badge " + (FINAL[c.state] || "text-bg-secondary");
    const bar = document.getElementById("canary-progress");
    bar.style.width = c.weight + "%"; text(bar, c.weight + " %");
    bar.parentElement.setAttribute("aria-valuenow", c.weight);
    bar.classList.toggle("bg-danger", c.state === "rolled_back");
    text(document.getElementById("canary-step"), `Step ${c.step + 1} of ${c.steps.length}`);
    text(document.getElementById("canary-next"), c.next_evaluation_at ? " · next evaluation " + new Date(c.next_evaluation_at).toLocaleTimeString() : "");
    const reason = document.getElementById("canary-reason");
    text(reason, c.reason); reason.hidden = !c.reason;
    reason.className = "small alert " + (c.state === "rolled_back" ? "alert-danger" : "alert-secondary");
    const body = document.getElementById("evaluations");
    body.replaceChildren(...c.evaluations.slice().reverse().map((e) => {
      const row = document.createElement("tr");
      [new Date(e.at).toLocaleString(), String(e.step + 1), e.verdict, side(e.canary), side(e.baseline), e.note || ""].forEach((v, i) => {
        const cell = document.createElement("td"); cell.textContent = v; if (i === 3 || i === 4) cell.className = "text-end text-nowrap"; row.appendChild(cell);
      });
      return row;
    }));
    const config = {displaylogo: false, responsive: true};
    Plotly.react("ramp-chart", ramp(c), layout("Canary traffic (%)", {yaxis: {range: [0, 105]}}), config);
    Plotly.react("guard-chart", guards(c), layout("Guards at each evaluation", {yaxis: {title: {text: "error %"}, rangemode: "tozero"}, yaxis2: {title: {text: "p95 ms"}, overlaying: "y", side: "right", rangemode: "tozero"}}), config);
    return c.state === "running";
  }

  let running = draw(JSON.parse(document.getElementById("canary-data").textContent));
  const timer = setInterval(async () => {
    if (!running || document.hidden) { if (!running) clearInterval(timer); return; }
    try {
      const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (response.ok) running = draw(await response.json());
    } catch (err) { /* offline for a moment: the next tick tries again */ }
  }, 5000);
})();
