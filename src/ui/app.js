// The fleet page of hydrant: live filtering, refresh without reloading,
// and holds through the daemon's API. Plain JavaScript, no framework; the
// server renders every piece of HTML (already escaped), this script only
// swaps pieces of it and never builds markup from data.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const LIVE = ["summary", "rollout", "rows", "environment"];
  let busy = false;

  // Fetches `url` as HTML and puts its live pieces in place of ours.
  async function swap(url) {
    if (busy) return;
    busy = true;
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { "X-Hydrant-UI": "refresh" } });
      if (!answer.ok) return;
      const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
      for (const id of LIVE) {
        const fresh = doc.getElementById(id);
        const here = document.getElementById(id);
        if (fresh && here && fresh.innerHTML !== here.innerHTML) {
          // Keep what someone is typing in a hold's reason.
          if (here.contains(document.activeElement) && document.activeElement.tagName === "INPUT") continue;
          here.replaceWith(document.importNode(fresh, true));
        }
      }
      document.body.dataset.refreshed = String(Date.now());
    } catch (e) {
      // The daemon may be restarting: try again at the next tick.
    } finally {
      busy = false;
    }
  }

  function filterUrl(form) {
    const params = new URLSearchParams();
    params.set("q", form.elements.q.value);
    params.set("state", form.elements.state.value);
    return "/?" + params.toString();
  }

  const form = document.getElementById("filter");
  if (form) {
    let timer = null;
    const apply = () => {
      const url = filterUrl(form);
      history.replaceState(null, "", url);
      swap(url);
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
    form.elements.q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(apply, 200); });
    form.elements.state.addEventListener("change", apply);
  }

  setInterval(() => { if (!document.hidden) swap(location.pathname + location.search); }, REFRESH_MS);

  // Holds: the forms carry the API's address and method; the request
  // carries the login cookie and the page's header.
  document.addEventListener("submit", async (e) => {
    const f = e.target;
    if (!f.classList || !f.classList.contains("hold-form")) return;
    e.preventDefault();
    const out = f.querySelector("output");
    const scope = f.dataset.scope;
    const name = f.dataset.name;
    const init = { method: f.dataset.method, credentials: "same-origin", headers: { "X-Hydrant-UI": "holds" } };
    let url = f.dataset.url;
    if (init.method === "POST") {
      const body = { reason: f.elements.reason.value, by: "the fleet page" };
      body[scope] = name;
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    } else {
      url += "?by=" + encodeURIComponent("the fleet page");
    }
    if (out) out.textContent = "…";
    try {
      const answer = await fetch(url, init);
      const said = await answer.json().catch(() => ({}));
      if (out) out.textContent = answer.ok ? "done: " + (said.commit || "no change") : "refused: " + (said.error || answer.status);
      f.dataset.done = answer.ok ? "ok" : "refused";
      if (answer.ok) setTimeout(() => swap(location.pathname + location.search), 300);
    } catch (err) {
      if (out) out.textContent = "failed: " + err;
    }
  });
})();
