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
