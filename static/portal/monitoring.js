// Monitoring pages: drift report (reference against current per feature, predictions, drift score
// over time), endpoint overview (traffic, latency, errors, model quality), reference profile
// (small multiples). Data comes from json_script blocks; nothing here fetches. Also reloads a
// queued or running report or profile once htmx's poll swaps in a finished state.
(function () {
  const config = { displaylogo: false, responsive: true };
  const margin = { t: 30, r: 15, b: 60, l: 50 };
  const read = (id) => {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  };
  const percentAxis = (title) => ({ title: { text: title }, tickformat: ".0%", rangemode: "tozero" });

  // --- polling: a finished report or profile replaces the page -------------------------------------
  document.body.addEventListener("htmx:afterSettle", () => {
    const state = document.getElementById("report-state");
    if (state && state.dataset.terminal === "1") window.location.reload();
  });

  if (typeof Plotly === "undefined") return;

  function bars(div, pair, title) {
    // Reference and current as shares per bin (their row counts differ), counts in the hover text.
    const trace = (h, name, color) => ({
      x: h.labels, y: h.shares, customdata: h.counts, type: "bar", name, marker: { color },
      hovertemplate: "%{x}<br>%{y:.1%} (%{customdata:,} rows)<extra>" + name + "</extra>",
    });
    Plotly.react(div, [trace(pair.reference, "reference", "#6c757d"), trace(pair.current, "current", "#0d6efd")], {
      title: { text: title, font: { size: 13 }, x: 0.02, xanchor: "left" }, barmode: "group", margin, legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
      yaxis: percentAxis("share of rows"), xaxis: { type: "category", automargin: true, tickangle: -35 },
    }, config);
  }

  // --- drift report ------------------------------------------------------------------------------
  const report = read("report-charts");
  if (report) {
    const select = document.getElementById("feature-select");
    const draw = (name) => {
      const pair = report.features[name];
      if (pair) bars("feature-chart", pair, `${name} (${pair.kind}, ${pair.status})`);
    };
    if (select) {
      if (select.value) draw(select.value);  // the first option: the most drifted feature
      select.addEventListener("change", () => draw(select.value));
      document.querySelectorAll(".feature-pick").forEach((link) => link.addEventListener("click", () => {
        select.value = link.dataset.feature;
        draw(link.dataset.feature);
      }));
    }
    const predictions = Object.entries(report.predictions || {});
    if (predictions.length && document.getElementById("prediction-chart")) {
      const [name, pair] = predictions[0];
      bars("prediction-chart", pair, `${name} (${pair.status})`);
    }
  }

  const history = read("drift-history");
  if (history) {
    Plotly.newPlot("history-share-chart", history.routes.map((r) => ({
      x: r.x, y: r.share, text: r.status, type: "scatter", mode: "lines+markers", name: r.route,
      hovertemplate: "%{x}<br>%{y:.0%} drifted (%{text})<extra>%{fullData.name}</extra>",
    })), { title: { text: "Share of drifted features", font: { size: 13 } }, margin, yaxis: percentAxis("drifted"),
      legend: { orientation: "h", y: -0.3 } }, config);
    Plotly.newPlot("history-psi-chart", history.psi.map((f) => ({
      x: f.x, y: f.y, type: "scatter", mode: "lines+markers", name: f.feature,
    })), { title: { text: `PSI per feature, route ${history.route}`, font: { size: 13 } }, margin,
      yaxis: { title: { text: "PSI" }, rangemode: "tozero" }, legend: { orientation: "h", y: -0.3 },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.2, y1: 0.2, line: { dash: "dot", color: "#dc3545" } }],
    }, config);
  }

  // --- endpoint overview -------------------------------------------------------------------------
  const traffic = read("traffic-data");
  if (traffic) {
    const lines = (key, suffix, extra) => traffic.routes.map((r) => ({
      x: r.x, y: r[key], type: "scatter", mode: r.x.length > 30 ? "lines" : "lines+markers", name: r.route + suffix,
      ...(extra || {}),
    }));
    const layout = (title, yaxis) => ({ title: { text: title, font: { size: 13 } }, margin, yaxis,
      xaxis: { tickformat: "%H:%M" }, legend: { orientation: "h", y: -0.35 } });
    Plotly.newPlot("traffic-requests", lines("requests", ""), layout("Requests per minute", { rangemode: "tozero" }), config);
    Plotly.newPlot("traffic-latency", [...lines("p50", " p50"), ...lines("p95", " p95", { line: { dash: "dot" } })],
      layout("Latency (ms)", { rangemode: "tozero" }), config);
    Plotly.newPlot("traffic-errors", lines("error_rate", ""), layout("Error rate", percentAxis("")), config);
  }

  const quality = read("quality-data");
  if (quality) {
    const traces = [];
    const shapes = [];
    quality.lines.forEach((line) => {
      traces.push({ x: line.x, y: line.y, type: "scatter", mode: "lines+markers", name: `${line.route} ${line.metric}` });
      if (line.training !== null && line.x.length) {
        traces.push({ x: [line.x[0], line.x[line.x.length - 1]], y: [line.training, line.training], type: "scatter",
          mode: "lines", line: { dash: "dot" }, name: `${line.route} ${line.metric} at training` });
      }
    });
    Plotly.newPlot("quality-chart", traces, { title: { text: "Model quality per day", font: { size: 13 } }, margin,
      legend: { orientation: "h", y: -0.3 }, shapes }, config);
  }

  // --- reference profile: small multiples --------------------------------------------------------
  const profile = read("profile-charts");
  if (profile) {
    const grid = (containerId, section) => {
      const container = document.getElementById(containerId);
      if (!container) return;
      Object.entries(section || {}).forEach(([name, h]) => {
        const col = document.createElement("div");
        col.className = "col-sm-6 col-lg-4";
        const div = document.createElement("div");
        div.className = "card shadow-sm overflow-hidden";
        div.style.height = "220px";
        div.setAttribute("role", "img");
        div.setAttribute("aria-label", `histogram of ${name}`);
        col.appendChild(div);
        container.appendChild(col);
        Plotly.newPlot(div, [{ x: h.labels, y: h.shares, customdata: h.counts, type: "bar", marker: { color: "#6c757d" },
          hovertemplate: "%{x}<br>%{y:.1%} (%{customdata:,} rows)<extra></extra>" }], {
          title: { text: name, font: { size: 12 } }, margin: { t: 28, r: 8, b: 40, l: 40 },
          yaxis: { tickformat: ".0%" }, xaxis: { type: "category", showticklabels: h.labels.length <= 12, automargin: true },
        }, config);
      });
    };
    grid("profile-grid", profile.features);
    grid("profile-predictions", profile.predictions);
  }
})();
