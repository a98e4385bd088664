(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  Plotly.newPlot("metric-chart", [{x: data.x.map(v => "v" + v), y: data.y, type: "scatter", mode: "lines+markers", name: data.metric}],
    {margin: {t: 10, r: 10, b: 40, l: 50}, xaxis: {title: {text: "version"}, type: "category"}, yaxis: {title: {text: data.metric}}},
    {displaylogo: false, responsive: true});
})();
