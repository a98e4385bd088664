(function () {
  const d = JSON.parse(document.getElementById("ab-data").textContent);
  const scale = d.metric === "rate" ? 100 : 1;
  const v = (list) => list.map((x) => x === null ? null : x * scale);
  const values = v(d.values), low = v(d.low), high = v(d.high);
  Plotly.newPlot("ab-chart", [{
    x: d.routes, y: values, type: "scatter", mode: "markers", marker: {size: 12},
    error_y: {type: "data", symmetric: false, array: values.map((y, i) => high[i] === null ? 0 : high[i] - y),
              arrayminus: values.map((y, i) => low[i] === null ? 0 : y - low[i])},
    name: d.metric,
  }], {margin: {t: 10, r: 20, b: 40, l: 60}, yaxis: {title: {text: d.metric === "rate" ? "rate (%)" : "mean outcome"}}},
  {displaylogo: false, responsive: true});
})();
