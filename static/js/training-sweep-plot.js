(function () {
  const plot = JSON.parse(document.getElementById("sweep-plot").textContent);
  if (!plot.trials.length) return;
  const dims = plot.names.map((name, i) => {
    const vals = plot.trials.map((t) => t.params[i]);
    if (vals.every((v) => typeof v === "number")) return { label: name, values: vals };
    const cats = [...new Set(vals.map(String))];
    return { label: name, values: vals.map((v) => cats.indexOf(String(v))), tickvals: cats.map((_, k) => k), ticktext: cats };
  });
  const values = plot.trials.map((t) => t.value);
  dims.push({ label: plot.metric, values: values });
  Plotly.newPlot("parcoords", [{ type: "parcoords", dimensions: dims,
    line: { color: values, colorscale: "Viridis", reversescale: plot.mode === "min", showscale: true } }],
    { margin: { l: 60, r: 60, t: 40, b: 20 } }, { responsive: true, displaylogo: false });
})();
