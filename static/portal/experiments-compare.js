// Compare page: overlaid curves (server-downsampled), parallel coordinates of params vs a metric,
// and a scatter of one param against the metric.
(function () {
  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const metricSel = document.getElementById("metric");
  const paramSel = document.getElementById("param");
  const note = document.getElementById("compare-note");
  const fill = (sel, keys, empty) => {
    if (!keys.length) { sel.innerHTML = `<option value="">${empty}</option>`; sel.disabled = true; return; }
    for (const k of keys) { const o = document.createElement("option"); o.value = k; o.textContent = k; sel.appendChild(o); }
  };
  fill(metricSel, data.metric_keys, "no metrics logged");
  fill(paramSel, data.param_keys, "no params logged");
  const num = (v) => (v === null || v === undefined || v === "" || isNaN(Number(v)) ? null : Number(v));
  const cfg = { responsive: true, displaylogo: false };

  async function curves(metric) {
    if (!metric) { Plotly.react("curves", [], { title: { text: "No metrics logged for these runs" } }, cfg); return; }
    const path = metric.split("/").map(encodeURIComponent).join("/");
    const series = await Promise.all(data.runs.map(async (run) => {
      const r = await fetch(`/api/v1/runs/${run.id}/metrics/${path}?max_points=1000`, { credentials: "same-origin" });
      return r.ok ? { run, s: await r.json() } : { run, s: { steps: [], values: [] } };
    }));
    const traces = series.map(({ run, s }) => ({ x: s.steps, y: s.values, type: "scatter", mode: "lines", name: run.name }));
    Plotly.react("curves", traces, { title: { text: `${metric} by step`, font: { size: 14 } }, margin: { l: 55, r: 15, t: 40, b: 40 }, xaxis: { title: { text: "step" } } }, cfg);
  }

  function parallel(metric) {
    const dims = [];
    for (const key of data.param_keys) {
      const vals = data.runs.map((r) => r.params[key]);
      const nums = vals.map(num);
      if (nums.every((v) => v !== null)) dims.push({ label: key, values: nums });
      else {
        const cats = [...new Set(vals.map((v) => v ?? "—"))];
        dims.push({ label: key, values: vals.map((v) => cats.indexOf(v ?? "—")), tickvals: cats.map((_, i) => i), ticktext: cats });
      }
    }
    const color = data.runs.map((r) => num(r.metrics[metric]));
    if (metric) dims.push({ label: metric, values: color });
    if (!dims.length) { Plotly.react("parallel", [], { title: { text: "Nothing to draw: no params or metrics" } }, cfg); return; }
    Plotly.react("parallel", [{ type: "parcoords", dimensions: dims, line: { color: color.map((c) => c ?? 0), colorscale: "Viridis", showscale: !!metric } }],
      { title: { text: `Params against ${metric || "—"}`, font: { size: 14 } }, margin: { l: 60, r: 60, t: 60, b: 30 } }, cfg);
  }

  function scatter(metric, param) {
    const pts = data.runs.map((r) => ({ x: r.params[param], y: num(r.metrics[metric]), name: r.name })).filter((p) => p.y !== null && p.x !== undefined);
    const numeric = pts.every((p) => num(p.x) !== null);
    Plotly.react("scatter", [{ x: pts.map((p) => (numeric ? num(p.x) : p.x)), y: pts.map((p) => p.y), text: pts.map((p) => p.name), mode: "markers+text", textposition: "top center", type: "scatter", marker: { size: 10 } }],
      { title: { text: `${metric || "—"} vs ${param || "—"}`, font: { size: 14 } }, xaxis: { title: { text: param }, type: numeric && pts.length && pts.every((p) => num(p.x) > 0) && Math.max(...pts.map((p) => num(p.x))) / Math.min(...pts.map((p) => num(p.x))) > 100 ? "log" : "-" }, yaxis: { title: { text: metric } }, margin: { l: 55, r: 15, t: 40, b: 45 } }, cfg);
    note.textContent = pts.length < data.runs.length ? `${data.runs.length - pts.length} run(s) lack ${metric} or ${param} and are left out of the scatter.` : "";
  }

  function draw() {
    const metric = metricSel.value, param = paramSel.value;
    curves(metric).catch((e) => { console.error(e); note.textContent = "Could not load the curves; reload to retry."; });
    parallel(metric);
    scatter(metric, param);
  }
  metricSel.addEventListener("change", draw);
  paramSel.addEventListener("change", draw);
  draw();
})();
