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
