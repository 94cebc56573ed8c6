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

  // Fade what the group has committed; underline what its owner has read but not committed.
  function markProgress() {
    document.querySelectorAll(".lane").forEach(function (lane) {
      const meta = lane.querySelector(".lane-meta");
      if (!meta) return;
      const committed = meta.dataset.committed === "" ? -1 : Number(meta.dataset.committed);
      const position = meta.dataset.position === "" ? -1 : Number(meta.dataset.position);
      lane.querySelectorAll(".event[data-offset]").forEach(function (box) {
        const offset = Number(box.dataset.offset);
        box.classList.toggle("is-committed", offset < committed);
        box.classList.toggle("is-read", offset < position);
      });
    });
  }

  function markSelected(event) {
    const box = event.target.closest && event.target.closest(".event[data-offset]");
    if (!box) return;
    document.querySelectorAll(".event.is-selected").forEach(function (el) { el.classList.remove("is-selected"); });
    box.classList.add("is-selected");
  }

  // Tell the lab's socket when a push is drawn: the server sends the next records push then, so
  // pushes never queue up faster than this browser draws them.
  function sayDrawn(event) {
    if (!event.target.matches || !event.target.matches("[data-lab-socket]")) return;
    const socket = event.detail.socketWrapper;
    requestAnimationFrame(function () { setTimeout(function () { socket.send("drawn"); }, 0); });
  }

  document.addEventListener("htmx:wsAfterMessage", function (event) { trimLanes(); markProgress(); sayDrawn(event); });
  document.addEventListener("click", markSelected);
})();
