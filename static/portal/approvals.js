// The evidence page: the metric chart (candidate against the version behind the alias), the
// print button, and telling the approver when the request changes under them.
(() => {
  const root = document.getElementById("evidence-page");
  if (!root) return;
  const pk = root.dataset.promotion;

  const printButton = root.querySelector("[data-action=print]");
  if (printButton) printButton.addEventListener("click", () => window.print());

  const source = document.getElementById("chart-data");
  if (source && window.Plotly) {
    const data = JSON.parse(source.textContent);
    const narrow = window.matchMedia("(max-width: 576px)").matches;
    const pct = data.change_pct.map((v) => (v === null ? 0 : v));
    const fmt = window.portal.num;
    Plotly.newPlot("metric-chart", [{
      type: "bar", orientation: "h", y: data.metrics, x: pct,
      marker: { color: "#5b7fb8" },  // one colour: whether up is better depends on the metric
      text: data.change_pct.map((v) => (v === null ? "n/a" : `${v > 0 ? "+" : ""}${fmt(v)} %`)),
      textposition: "auto", textangle: 0, insidetextfont: { color: "#fff" }, cliponaxis: false,
      customdata: data.metrics.map((_, i) => [fmt(data.candidate[i]), fmt(data.current[i])]),
      hovertemplate: `%{y}: ${data.candidate_label} %{customdata[0]}, ${data.current_label} %{customdata[1]}<extra></extra>`,
    }], {
      height: Math.max(140, 50 + data.metrics.length * 34),
      margin: { t: 6, r: 64, b: 28, l: narrow ? 70 : 120 },  // room for the labels outside the bars
      xaxis: { zeroline: true, zerolinecolor: "#6c757d", ticksuffix: " %" },
      yaxis: { automargin: true, autorange: "reversed" },
      showlegend: false,
    }, { displaylogo: false, responsive: true, staticPlot: narrow });
  }

  // A notification about this request (a decision, the promotion, a withdrawal, a rollback):
  // reload to show it, unless the reader is writing a comment; then say so and let them reload.
  const changed = root.querySelector("[data-role=changed]");
  const writing = () => [...root.querySelectorAll("textarea")].some((t) => t.value.trim() !== "")
    || (document.activeElement && root.contains(document.activeElement) && document.activeElement.matches("textarea"));
  document.addEventListener("portal:notification", (e) => {
    const obj = e.detail && e.detail.object;
    if (!obj || obj.type !== "approvals.promotionrequest" || String(obj.id) !== pk) return;
    if (writing()) { if (changed) changed.classList.remove("d-none"); } else { location.reload(); }
  });

  // While the checks run, ask every few seconds and reload once they are done.
  if (root.dataset.state === "checks_running") {
    const poll = async () => {
      try {
        const r = await fetch(`/api/v1/promotions/${pk}/`, { credentials: "same-origin" });
        if (r.ok && (await r.json()).state !== "checks_running") { location.reload(); return; }
      } catch (err) { /* offline for a moment: ask again */ }
      setTimeout(poll, 3000);
    };
    setTimeout(poll, 3000);
  }
})();

// The inbox: a promotion notification means a list changed; offer the fresh one.
(() => {
  const banner = document.querySelector("[data-role=inbox-changed]");
  if (!banner) return;
  document.addEventListener("portal:notification", (e) => {
    if ((e.detail.kind || "").startsWith("promotion.")) banner.classList.remove("d-none");
  });
})();
