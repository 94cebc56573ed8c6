// The lesson panel: "Show me" points at the control a step needs, and a step's hint appears once
// its time has come (the server renders it already shown when the page loads after that).
(function () {
  "use strict";

  function showMe(name) {
    const control = document.querySelector('[data-control="' + name + '"]');
    if (!control) return;
    // A control in a closed fold (the registry panel, a consumer's config) is opened first.
    for (let fold = control.closest("details"); fold; fold = fold.parentElement && fold.parentElement.closest("details")) {
      fold.open = true;
    }
    control.scrollIntoView({ block: "center", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
    control.classList.add("is-shown");
    const focusable = control.matches("button, input, select, a") ? control : control.querySelector("button, input, select, a");
    if (focusable) focusable.focus({ preventScroll: true });
    setTimeout(function () { control.classList.remove("is-shown"); }, 4000);
  }

  function revealDueHints() {
    const now = Date.now();
    document.querySelectorAll(".step-hint[hidden][data-reveal-at]").forEach(function (hint) {
      if (Number(hint.dataset.revealAt) <= now) hint.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-show-me]");
    if (button) showMe(button.dataset.showMe);
  });
  setInterval(revealDueHints, 2000);
})();
