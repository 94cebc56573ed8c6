// "Large display": the whole site scaled up for a projector, by a class on <html> that app.css
// sizes everything from. The choice is kept in localStorage. This script is loaded in <head>
// without defer, so the class is on before the first paint and a large page never flashes small.
(function () {
  "use strict";

  const KEY = "kafkalab.display";
  const LARGE = "display-large";
  const root = document.documentElement;

  function remembered() {
    try {
      return localStorage.getItem(KEY) === "large";
    } catch (e) {
      return false; // storage blocked (privacy settings): the page stays at its normal size
    }
  }

  function remember(large) {
    try {
      if (large) localStorage.setItem(KEY, "large");
      else localStorage.removeItem(KEY);
    } catch (e) {
      // Not remembered, but this page still switches.
    }
  }

  function show(large) {
    root.classList.toggle(LARGE, large);
    document.querySelectorAll("[data-display-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", large ? "true" : "false");
    });
  }

  show(remembered());

  // The toggle comes hidden: without JavaScript it could do nothing.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-display-toggle]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        const large = !root.classList.contains(LARGE);
        remember(large);
        show(large);
        // The lanes place their offset markers by measuring: have them measure again.
        window.dispatchEvent(new Event("resize"));
      });
    });
    show(root.classList.contains(LARGE));
  });

  // Switched in another tab of the site: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key === KEY) show(event.newValue === "large");
  });
})();
