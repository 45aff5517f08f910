// The dashboard's small script: keeps the live part of a page current by polling its JSON
// fragment while the tab is visible, and copies a shown-once value to the clipboard.
"use strict";

const POLL_MS = 2000;

function startPolling(region) {
  const source = region.dataset.live;
  let busy = false;
  const poll = async () => {
    if (busy || document.visibilityState !== "visible") return;
    busy = true;
    try {
      const response = await fetch(source, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (response.redirected || response.status === 401) {
        window.location.assign("/dashboard/login");
        return;
      }
      if (response.ok) {
        const { html } = await response.json();
        // Replacing the part that holds the keyboard focus would drop it: wait for it to move.
        const focused = region.contains(document.activeElement) && document.activeElement !== region;
        if (html !== region.dataset.lastHtml && !focused) {
          region.dataset.lastHtml = html;
          region.innerHTML = html;
        }
      }
    } catch (_) {
      // The server is restarting or the network dropped: the next poll tries again.
    } finally {
      busy = false;
    }
  };
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-live]")) startPolling(region);

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = document.getElementById(button.dataset.copy);
      const status = document.querySelector("[data-copy-status]");
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
        if (status) status.textContent = "Copied.";
      } catch (_) {
        if (status) status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
      }
    });
  }
});
