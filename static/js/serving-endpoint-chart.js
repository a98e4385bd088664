(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const traces = [];
  for (const r of data.routes) {
    traces.push({x: r.x, y: r.requests, type: "scatter", mode: "lines+markers", name: r.route + " requests/min"});
    traces.push({x: r.x, y: r.p95, type: "scatter", mode: "lines", line: {dash: "dot"}, yaxis: "y2", name: r.route + " p95 ms"});
  }
  Plotly.newPlot("traffic-chart", traces,
    {margin: {t: 10, r: 50, b: 40, l: 50}, legend: {orientation: "h"}, yaxis: {title: {text: "requests/min"}, rangemode: "tozero"},
     yaxis2: {title: {text: "p95 ms"}, overlaying: "y", side: "right", rangemode: "tozero"}},
    {displaylogo: false, responsive: true});
})();
