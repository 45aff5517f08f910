// The Link page's small script: filters the catalogue as one types, and marks the credential
// form busy while Millrace checks it. Without it the page works the same, by full requests.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const search = document.querySelector("input[data-filter]");
  if (search) {
    const items = Array.from(document.querySelectorAll("[data-search]"));
    const count = document.getElementById("search-count");
    const none = document.getElementById("no-match");
    const filter = () => {
      const needle = search.value.trim().toLowerCase();
      let shown = 0;
      for (const item of items) {
        const match = needle === "" || item.dataset.search.includes(needle);
        item.hidden = !match;
        if (match) shown += 1;
      }
      for (const section of document.querySelectorAll("section.category")) {
        section.hidden = section.querySelectorAll("[data-search]:not([hidden])").length === 0;
      }
      if (none) none.hidden = shown !== 0;
      if (count) count.textContent = needle === "" ? "" : `${shown} system${shown === 1 ? "" : "s"} found`;
    };
    search.addEventListener("input", filter);
  }

  const error = document.getElementById("form-error");
  if (error) error.focus();

  const form = document.querySelector("form[data-busy-label]");
  if (form) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      const status = form.querySelector("[data-busy-status]");
      if (button) button.disabled = true;
      if (status) status.textContent = form.dataset.busyLabel;
    });
  }
});
