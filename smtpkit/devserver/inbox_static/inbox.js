// smtpkit inbox: live list updates (Server-Sent Events), local times and delete buttons.
// Loaded as a file (the page's Content-Security-Policy allows no inline script). It never
// puts message data into the page itself: the list fragment comes HTML-escaped from the server.
"use strict";

(function () {
  const list = document.getElementById("list");
  const count = document.getElementById("count");
  const live = document.getElementById("live");
  const selected = document.body.dataset.selected || "";

  function localTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const when = new Date(el.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) {
        el.textContent = when.toLocaleString();
        el.title = el.getAttribute("datetime");
      }
    }
  }

  async function refresh() {
    const response = await fetch("/fragments/list?selected=" + encodeURIComponent(selected), {
      cache: "no-store",
    });
    if (!response.ok) return;
    list.innerHTML = await response.text();
    const n = Number(response.headers.get("X-Message-Count") || "0");
    count.textContent = n + (n === 1 ? " message" : " messages");
    localTimes(list);
    document.body.dataset.version = String(Number(document.body.dataset.version || "0") + 1);
  }

  function connect() {
    if (!("EventSource" in window)) {
      setInterval(refresh, 3000);
      return;
    }
    const events = new EventSource("/api/events");
    events.addEventListener("hello", () => live.classList.add("on"));
    events.addEventListener("change", refresh);
    events.addEventListener("error", () => live.classList.remove("on"));
    events.addEventListener("open", () => live.classList.add("on"));
  }

  async function remove(url) {
    const response = await fetch(url, { method: "DELETE" });
    if (!response.ok) {
      alert("Delete failed: " + response.status);
      return;
    }
    window.location.assign("/");
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const one = target.closest("[data-delete]");
    if (one) {
      remove("/api/messages/" + encodeURIComponent(one.getAttribute("data-delete")));
    } else if (target.closest("#delete-all")) {
      if (window.confirm("Delete all messages?")) remove("/api/messages");
    }
  });

  localTimes(document);
  connect();
})();
