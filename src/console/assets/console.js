// Pitcrew console: live regions (see src/console/live.ts). Pages work without this script; it only
// refreshes the parts marked data-live when the server says something they show has changed.
(() => {
  var body = document.body;
  var stream = body.getAttribute("data-live-stream");
  var state = new WeakMap();

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  }

  function inUse(el) {
    return el.contains(document.activeElement) && document.activeElement !== body;
  }

  // Someone is typing or choosing inside it: refresh when they leave it. Until then the region
  // says it is behind (data-live-stale), for the stylesheet and for tests.
  function refreshWhenLeft(el, s) {
    s.dirty = true;
    el.setAttribute("data-live-stale", "true");
    if (s.waiting) return;
    s.waiting = true;
    el.addEventListener("focusout", function onOut() {
      setTimeout(() => {
        if (el.contains(document.activeElement)) return;
        el.removeEventListener("focusout", onOut);
        s.waiting = false;
        if (s.dirty) schedule(el);
      }, 0);
    });
  }

  function fetchRegion(el) {
    var s = state.get(el) || {};
    state.set(el, s);
    if (inUse(el)) {
      refreshWhenLeft(el, s);
      return;
    }
    if (s.busy) {
      s.dirty = true;
      return;
    }
    s.busy = true;
    s.dirty = false;
    fetch(el.getAttribute("data-live"), {
      headers: { "X-Pitcrew-Fragment": "1", Accept: "text/html" },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then((res) => {
        // Signed out meanwhile: the whole page goes to the sign-in form.
        if (res.status === 401 || res.redirected) {
          window.location.reload();
          return null;
        }
        return res.ok ? res.text() : null;
      })
      .then((text) => {
        if (text === null || text === undefined) return;
        // Focused while the fetch was out (a note being typed): replacing it now would lose what
        // they typed. Fetched again once they leave.
        if (inUse(el)) return refreshWhenLeft(el, s);
        el.innerHTML = text;
        el.removeAttribute("data-live-stale");
        el.setAttribute("data-live-updated", String(Date.now()));
      })
      .catch(() => {})
      .then(() => {
        s.busy = false;
        if (s.dirty) schedule(el);
      });
  }

  // Bursts of events become one fetch per region.
  function schedule(el) {
    var s = state.get(el) || {};
    state.set(el, s);
    if (s.timer) return;
    s.timer = setTimeout(() => {
      s.timer = null;
      fetchRegion(el);
    }, 150);
  }

  function listensTo(el, topics) {
    if (topics.indexOf("*") >= 0) return true;
    var on = (el.getAttribute("data-live-on") || "").split(/\s+/);
    for (let i = 0; i < on.length; i++) if (on[i] && topics.indexOf(on[i]) >= 0) return true;
    return false;
  }

  regions().forEach((el) => {
    var every = Number(el.getAttribute("data-live-every"));
    if (every > 0)
      setInterval(() => {
        if (!document.hidden) schedule(el);
      }, every * 1000);
  });

  if (stream && window.EventSource) {
    const source = new EventSource(stream);
    // On every (re)connect: whatever happened while not listening is fetched again.
    source.addEventListener("hello", () => {
      body.setAttribute("data-live-connected", "true");
      regions().forEach(schedule);
    });
    source.addEventListener("change", (ev) => {
      var msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_e) {
        return;
      }
      var topics = Array.isArray(msg.topics) ? msg.topics : ["*"];
      regions().forEach((el) => {
        if (listensTo(el, topics)) schedule(el);
      });
    });
    source.addEventListener("error", () => {
      body.setAttribute("data-live-connected", "false");
    });
  }

  // Forms that ask before they act (data-confirm="…").
  document.addEventListener("submit", (ev) => {
    var form = ev.target;
    var question = form?.getAttribute?.("data-confirm");
    if (question && !window.confirm(question)) ev.preventDefault();
  });
})();
