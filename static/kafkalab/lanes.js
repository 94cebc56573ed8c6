// Partition lanes: keep each lane to its window of recent events, and mark the inspected box.
// The server appends new event boxes over the websocket (htmx oob swaps); this trims the oldest
// so the page stays light at any event rate.
(function () {
  "use strict";

  function trimLanes() {
    const lanes = document.getElementById("lanes");
    if (!lanes) return;
    const windowSize = parseInt(lanes.dataset.window || "40", 10);
    lanes.querySelectorAll(".lane-events").forEach(function (lane) {
      const extra = lane.children.length - windowSize;
      for (let i = 0; i < extra; i++) lane.firstElementChild.remove();
    });
  }

  function markSelected(event) {
    const box = event.target.closest && event.target.closest(".event[data-offset]");
    if (!box) return;
    document.querySelectorAll(".event.is-selected").forEach(function (el) { el.classList.remove("is-selected"); });
    box.classList.add("is-selected");
  }

  document.addEventListener("htmx:wsAfterMessage", trimLanes);
  document.addEventListener("click", markSelected);
})();
