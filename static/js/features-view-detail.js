(() => {
  const stats = JSON.parse(document.getElementById("stats-data").textContent);
  const box = document.getElementById("charts");
  if (box) {
    for (const [name, s] of Object.entries(stats)) {
      const col = document.createElement("div"); col.className = "col-md-4 mb-3";
      const div = document.createElement("div"); div.style.height = "220px"; col.appendChild(div); box.appendChild(col);
      let trace;
      if (s.pii) {  // PII: counts only, never values (apps/features/stats.py)
        div.className = "border rounded p-3 h-100 d-flex flex-column justify-content-center";
        div.dataset.pii = name;
        const title = document.createElement("div"); title.className = "fw-semibold small"; title.textContent = `${name} `;
        const badge = document.createElement("span"); badge.className = "badge text-bg-warning"; badge.textContent = "PII";
        title.appendChild(badge);
        const counts = document.createElement("div"); counts.className = "fs-5";
        const fmt = (n) => (n ?? 0).toLocaleString("en-US");
        counts.textContent = `${fmt(s.count - s.nulls)} values · ${fmt(s.distinct)} distinct`;
        const note = document.createElement("div"); note.className = "small text-secondary";
        note.textContent = "PII: only counts are shown; values are never charted.";
        div.append(title, counts, note);
        continue;
      }
      if (s.histogram) {
        const e = s.histogram.edges; const x = s.histogram.counts.map((_, i) => (e[i] + e[i + 1]) / 2);
        trace = {type: "bar", x, y: s.histogram.counts, marker: {color: "#0d6efd"}};
      } else if (s.top) {
        trace = {type: "bar", x: s.top.map(t => t[0]), y: s.top.map(t => t[1]), marker: {color: "#6f42c1"}};
      } else continue;
      Plotly.newPlot(div, [trace], {title: {text: name, font: {size: 13}}, margin: {t: 30, l: 40, r: 10, b: 30}, bargap: 0.05},
                     {displayModeBar: false, responsive: true});
    }
  }
  const table = document.getElementById("jobs");
  const body = table.querySelector("tbody");
  portal.openLive(table.dataset.livePath, (msg) => {
    if (msg.type !== "materialization") return;
    let row = body.querySelector(`tr[data-job="${msg.job}"]`);
    if (!row) {
      body.querySelector("tr.empty")?.remove();
      row = document.createElement("tr"); row.dataset.job = msg.job;
      row.innerHTML = `<td>${msg.job}</td><td></td><td class="state"></td><td><div class="progress"><div class="progress-bar"></div></div></td><td class="rows"></td><td class="keys"></td><td></td><td></td><td></td>`;
      body.prepend(row);
    }
    row.querySelector(".state").textContent = msg.state + (msg.error ? " " + msg.error : "");
    row.querySelector(".progress-bar").style.width = `${Math.round(msg.progress * 100)}%`;
    row.querySelector(".rows").textContent = msg.rows_read;
    row.querySelector(".keys").textContent = msg.keys_written;
  });
})();
