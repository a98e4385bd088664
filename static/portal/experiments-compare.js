// Compare page: a side-by-side table (server-rendered; a switch hides rows that are the same),
// overlaid curves of one metric by step, parallel coordinates of the params that differ against
// the metric, and a scatter of one param against it. The default metric is the experiment's
// primary or first validation metric, and its curves come with the page (no request per run).
(function () {
  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const metricSel = document.getElementById("metric");
  const paramSel = document.getElementById("param");
  const note = document.getElementById("compare-note");
  const table = document.getElementById("compare-table");
  document.getElementById("only-diff").addEventListener("change", (e) => {
    for (const row of table.querySelectorAll("tr.same")) row.hidden = e.target.checked;
  });

  const fill = (sel, keys, empty, chosen) => {
    if (!keys.length) { sel.innerHTML = `<option value="">${empty}</option>`; sel.disabled = true; return; }
    for (const k of keys) { const o = document.createElement("option"); o.value = k; o.textContent = k; o.selected = k === chosen; sel.appendChild(o); }
  };
  fill(metricSel, data.metric_keys, "no metrics logged", data.default_metric);
  fill(paramSel, data.param_keys, "no params logged", data.varying_params[0] || data.param_keys[0]);
  const num = (v) => (v === null || v === undefined || v === "" || isNaN(Number(v)) ? null : Number(v));
  const short = (text, n = 18) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
  const cfg = { responsive: true, displaylogo: false };
  const font = { size: 12 };
  const loaded = {};  // metric -> {runId: {steps, values}}
  if (data.series.key) loaded[data.series.key] = data.series.runs;

  async function seriesFor(metric) {
    if (loaded[metric]) return loaded[metric];
    const path = metric.split("/").map(encodeURIComponent).join("/");
    const pairs = await Promise.all(data.runs.map(async (run) => {
      const r = await fetch(`/api/v1/runs/${run.id}/metrics/${path}?max_points=1000`, { credentials: "same-origin" });
      return [String(run.id), r.ok ? await r.json() : { steps: [], values: [] }];
    }));
    loaded[metric] = Object.fromEntries(pairs);
    return loaded[metric];
  }

  async function curves(metric) {
    if (!metric) { Plotly.react("curves", [], { title: { text: "No metrics logged for these runs" } }, cfg); return; }
    const series = await seriesFor(metric);
    const traces = data.runs.map((run) => {
      const s = series[String(run.id)] || { steps: [], values: [] };
      return { x: s.steps, y: s.values, type: "scatter", mode: s.steps.length > 60 ? "lines" : "lines+markers", name: run.name, marker: { size: 5 } };
    });
    Plotly.react("curves", traces, {
      title: { text: `${metric} by step`, font: { size: 14 } }, font,
      margin: { l: 60, r: 20, t: 40, b: 40 }, xaxis: { title: { text: "step" }, automargin: true },
      yaxis: { title: { text: metric }, automargin: true, exponentformat: "e" },
      legend: { orientation: "h", y: -0.18 }, hovermode: "x unified",
    }, cfg);
  }

  function parallel(metric) {
    const dims = [];
    const keys = data.varying_params.length ? data.varying_params : data.param_keys;
    for (const key of keys.slice(0, 8)) {
      const vals = data.runs.map((r) => r.params[key]);
      const nums = vals.map(num);
      if (nums.every((v) => v !== null)) dims.push({ label: short(key), values: nums });
      else {
        const cats = [...new Set(vals.map((v) => v ?? "—"))];
        dims.push({ label: short(key), values: vals.map((v) => cats.indexOf(v ?? "—")), tickvals: cats.map((_, i) => i), ticktext: cats.map((c) => short(String(c), 12)) });
      }
    }
    const color = data.runs.map((r) => num(r.metrics[metric]));
    if (metric) dims.push({ label: short(metric), values: color.map((c) => c ?? NaN) });
    if (!dims.length) { Plotly.react("parallel", [], { title: { text: "Nothing to draw: no params or metrics" } }, cfg); return; }
    Plotly.react("parallel", [{ type: "parcoords", labelangle: 0, labelside: "top", labelfont: { size: 13 }, rangefont: { size: 10 }, tickfont: { size: 10 }, dimensions: dims,
      line: { color: color.map((c) => c ?? 0), colorscale: "Viridis", showscale: !!metric, colorbar: { title: { text: short(metric, 12) } } } }],
    { title: { text: `Params that differ, against ${metric || "—"}`, font: { size: 14 } }, font, margin: { l: 60, r: 80, t: 105, b: 30 } }, cfg);
  }

  function scatter(metric, param) {
    const pts = data.runs.map((r) => ({ x: r.params[param], y: num(r.metrics[metric]), name: r.name })).filter((p) => p.y !== null && p.x !== undefined);
    const numeric = pts.every((p) => num(p.x) !== null);
    const xs = pts.map((p) => (numeric ? num(p.x) : p.x));
    const logX = numeric && pts.length > 1 && xs.every((x) => x > 0) && Math.max(...xs) / Math.min(...xs) > 100;
    // One trace per run: names go in the legend and the hover, never as labels on top of each other.
    const traces = pts.map((p, i) => ({ x: [xs[i]], y: [p.y], name: p.name, mode: "markers", type: "scatter", marker: { size: 11 },
      hovertemplate: `${p.name}<br>${param}=%{x}<br>${metric}=%{y}<extra></extra>` }));
    Plotly.react("scatter", traces, {
      title: { text: `${metric || "—"} against ${param || "—"}`, font: { size: 14 } }, font,
      xaxis: { title: { text: param }, type: logX ? "log" : "-", automargin: true },
      yaxis: { title: { text: metric }, automargin: true, exponentformat: "e" },
      legend: { orientation: "h", y: -0.25 }, margin: { l: 60, r: 20, t: 40, b: 50 },
    }, cfg);
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
