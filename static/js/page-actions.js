// Behaviour that templates ask for with data- attributes, since the Content Security Policy runs no
// inline handler (onsubmit=, onchange=) and no style="..." attribute:
//   <form data-confirm="Delete …?">  asks first; Cancel stops the submission (and data-busy with it)
//   <select data-autosubmit>         submits its form when the choice changes
//   <div data-width="42">            sets the element's width to 42 % (progress bars), also in
//                                    fragments htmx swaps in later
// Loaded from base.html before portal.js, so a cancelled confirmation never reaches the busy state.
(() => {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  });

  document.addEventListener("change", (event) => {
    const field = event.target;
    if (field instanceof HTMLElement && field.hasAttribute("data-autosubmit") && field.form) field.form.requestSubmit();
  });

  const applyWidths = (root) => {
    const nodes = root.matches && root.matches("[data-width]") ? [root] : [];
    nodes.push(...root.querySelectorAll("[data-width]"));
    for (const node of nodes) {
      const value = Number(node.getAttribute("data-width"));
      if (Number.isFinite(value)) node.style.width = `${Math.max(0, Math.min(100, value))}%`;
    }
  };
  applyWidths(document);
  document.addEventListener("htmx:load", (event) => applyWidths(event.target));
})();
