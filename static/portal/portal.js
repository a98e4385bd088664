// Small shared helpers. Live pages open a socket with openLive(path, onMessage): it reconnects
// with backoff and tells the page when it is (re)connected so it can catch up on missed events.
window.portal = {
  openLive(path, onMessage, onOpen) {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    let delay = 500;
    const connect = () => {
      const ws = new WebSocket(`${proto}://${location.host}${path}`);
      ws.onopen = () => { delay = 500; if (onOpen) onOpen(); };
      ws.onmessage = (e) => { try { onMessage(JSON.parse(e.data)); } catch (err) { console.error(err); } };
      ws.onclose = (e) => {
        if (e.code === 4403 || e.code === 4401) return;  // not allowed: do not hammer the server
        setTimeout(connect, delay); delay = Math.min(delay * 2, 10000);
      };
    };
    connect();
  },

  // Numbers by magnitude, exactly as the server's `num` filter (apps/core/format.py) writes them:
  // 8 not 8.0000, 12,000, 0.9123, 3.81e-05. A JSON null is a NaN the server could not encode.
  num(v) {
    if (v === undefined || v === "") return "—";
    if (v === null) return "NaN";
    const n = Number(v);
    if (!isFinite(n)) return isNaN(n) ? "NaN" : (n > 0 ? "∞" : "-∞");
    if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString("en-US");
    const m = Math.abs(n);
    if (m < 1e-3 || m >= 1e9) return n.toExponential(2).replace(/e([+-])(\d)$/, "e$10$2");  // e-05, as Python
    const decimals = Math.max(3 - Math.floor(Math.log10(m)), 0);
    return Number(n.toFixed(decimals)).toLocaleString("en-US", { maximumFractionDigits: decimals });
  },

  // A moment as the server's `when` filter writes it: "30 Nov 2026, 14:05 UTC" (the portal's zone).
  when(iso) {
    if (!iso) return "—";
    const zone = document.body.dataset.timeZone || "UTC";
    const parts = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
      hour12: false, timeZoneName: "short",
    }).formatToParts(new Date(iso));
    const part = (type) => (parts.find((p) => p.type === type) || {}).value || "";
    return `${part("day")} ${part("month")} ${part("year")}, ${part("hour")}:${part("minute")} ${part("timeZoneName")}`.trim();
  },
};

// A form with data-busy="Building…" shows that text on its submit button and disables it while the
// server works, so a slow request is not sent twice.
document.addEventListener("submit", (e) => {
  const form = e.target;
  // getAttribute, not form.dataset: a field named "dataset" shadows that property on a form.
  const busy = form instanceof HTMLFormElement ? form.getAttribute("data-busy") : null;
  const button = busy && form.querySelector("button[type=submit]");
  if (!button) return;
  button.disabled = true;
  button.innerHTML = '<span class="spinner-border spinner-border-sm" aria-hidden="true"></span> ';
  button.append(busy);
});
