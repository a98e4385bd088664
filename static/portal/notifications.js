// The bell in the header: the unread count, a dropdown of the latest notifications (fetched when
// opened), and live ones over /ws/notifications/ (the user's own group), shown as a toast too.
(() => {
  const bell = document.getElementById("bell");
  if (!bell) return;
  const count = bell.querySelector("[data-role=bell-count]");
  const button = bell.querySelector("[data-role=bell-button]");
  const list = bell.querySelector("[data-role=bell-list]");
  const toasts = document.querySelector("[data-role=bell-toasts]");
  const csrf = (() => {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { return ""; }
  })();
  let loaded = false;

  const setCount = (n) => {
    count.textContent = n > 99 ? "99+" : String(n);
    count.classList.toggle("d-none", !n);
    button.setAttribute("aria-label", `Notifications, ${n} unread`);
  };

  const item = (n) => {
    const a = document.createElement("a");
    a.className = "dropdown-item text-wrap py-2" + (n.read_at ? "" : " fw-semibold");
    a.href = n.url || "/notifications/";
    a.dataset.id = n.id;
    const title = document.createElement("div");
    title.textContent = n.title;
    const meta = document.createElement("div");
    meta.className = "small text-secondary fw-normal";
    meta.textContent = `${n.kind} · ${window.portal.when(n.created_at)}`;
    a.append(title, meta);
    a.addEventListener("click", () => {
      if (n.read_at) return;
      fetch(`/api/v1/notifications/${n.id}/read`, {
        method: "POST", keepalive: true, credentials: "same-origin", headers: { "X-CSRFToken": csrf },
      });
    });
    return a;
  };

  const empty = () => {
    const div = document.createElement("div");
    div.className = "px-3 py-2 small text-secondary";
    div.textContent = "Nothing yet.";
    return div;
  };

  const load = async () => {
    const r = await fetch("/api/v1/notifications/?page_size=8", { credentials: "same-origin" });
    if (!r.ok) return;
    const body = await r.json();
    list.replaceChildren(...(body.results.length ? body.results.map(item) : [empty()]));
    loaded = true;
  };

  const toast = (n) => {
    if (!toasts || !window.bootstrap) return;
    const el = document.createElement("div");
    el.className = "toast";
    el.setAttribute("role", "status");
    el.dataset.role = "bell-toast";
    const body = document.createElement("div");
    body.className = "toast-body d-flex gap-2 align-items-start";
    const link = document.createElement("a");
    link.href = n.url || "/notifications/";
    link.className = "text-decoration-none flex-grow-1";
    link.textContent = n.title;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-bs-dismiss", "toast");
    close.setAttribute("aria-label", "Close");
    body.append(link, close);
    el.append(body);
    toasts.append(el);
    el.addEventListener("hidden.bs.toast", () => el.remove());
    new window.bootstrap.Toast(el, { delay: 8000 }).show();
  };

  bell.addEventListener("show.bs.dropdown", () => { load(); });

  window.portal.openLive("/ws/notifications/", (msg) => {
    if (msg.type === "notification" && msg.id) {
      if (typeof msg.unread === "number") setCount(msg.unread);
      if (loaded) {
        if (list.firstElementChild && !list.firstElementChild.dataset.id) list.replaceChildren();
        list.prepend(item(msg));
      }
      toast(msg);
      // Pages about the object (the evidence page) listen for this to show that it changed.
      document.dispatchEvent(new CustomEvent("portal:notification", { detail: msg }));
    } else if (msg.type === "unread" && typeof msg.count === "number") {
      setCount(msg.count);
    }
  });
})();
