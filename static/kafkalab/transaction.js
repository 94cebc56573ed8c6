// OrderService's open transaction: count down to the broker aborting it by itself. The page says
// the deadline as a clock time (that is all a page without JavaScript gets); this turns it into
// "in N s" every quarter second, whether the server rendered it or pushed it over the websocket.
(function () {
  "use strict";

  function countDown() {
    document.querySelectorAll("[data-txn-deadline]").forEach(function (line) {
      const shown = line.querySelector("[data-txn-countdown]");
      const deadline = Date.parse(line.dataset.txnDeadline);
      if (!shown || Number.isNaN(deadline)) return;
      if (!shown.dataset.clock) shown.dataset.clock = shown.textContent.trim();
      const left = Math.ceil((deadline - Date.now()) / 1000);
      shown.textContent = left > 0
        ? "in " + left + " s (" + shown.dataset.clock + ")"
        : "now: its timeout has run out, and the broker aborts it at its next check";
      line.classList.toggle("is-due", left <= 0);
    });
  }

  setInterval(countDown, 250);
  document.addEventListener("DOMContentLoaded", countDown);
  document.addEventListener("htmx:afterSettle", countDown);
  document.addEventListener("htmx:wsAfterMessage", countDown);
})();
