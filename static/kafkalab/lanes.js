// Partition lanes: keep each lane to its window of recent events, mark the inspected box, and
// place the committed-offset, position and last-stable-offset markers on the log.
// The server appends new event boxes over the websocket (htmx oob swaps); this trims the oldest
// so the page stays light at any event rate. Every topic's lanes (the orders topic, the
// dead-letter topic) sit in a `.lanes[data-topic]` group with its own window.
(function () {
  "use strict";

  function trimLanes() {
    document.querySelectorAll(".lanes[data-window]").forEach(function (lanes) {
      const windowSize = parseInt(lanes.dataset.window || "40", 10);
      lanes.querySelectorAll(".lane-events").forEach(function (lane) {
        const extra = lane.children.length - windowSize;
        for (let i = 0; i < extra; i++) lane.firstElementChild.remove();
      });
    });
  }

  // Fade what the group has committed; underline what its owner has read but not committed; a
  // lane a crash-looping consumer is stuck on says so on the lane itself too.
  function markProgress() {
    document.querySelectorAll(".lane").forEach(function (lane) {
      const meta = lane.querySelector(".lane-meta");
      if (!meta) return;
      if (meta.dataset.blocked === undefined) lane.removeAttribute("data-blocked");
      else lane.dataset.blocked = meta.dataset.blocked;
      // The lane says where its log ends and where read_committed readers stop (its LSO).
      lane.dataset.logEnd = meta.dataset.logEnd || "";
      lane.dataset.lso = meta.dataset.lso || "";
      const committed = meta.dataset.committed === "" ? -1 : Number(meta.dataset.committed);
      const position = meta.dataset.position === "" ? -1 : Number(meta.dataset.position);
      lane.querySelectorAll(".event[data-offset]").forEach(function (box) {
        const offset = Number(box.dataset.offset);
        box.classList.toggle("is-committed", offset < committed);
        box.classList.toggle("is-read", offset < position);
      });
    });
  }

  // Offsets as a picture: each marker stands at the boundary before the first box at or past its
  // offset (past the newest box: at the log end), the lag band runs from the committed offset to
  // the log end, and the markers' names are laid out so that none hides another.
  const BOX_GAP = 3; // px between boxes, as in app.css
  const LABEL_GAP = 4;

  function boundary(boxes, offset, area) {
    for (let i = 0; i < boxes.length; i++) {
      if (Number(boxes[i].dataset.offset) < offset) continue;
      const x = boxes[i].getBoundingClientRect().left - BOX_GAP / 2 - area.origin;
      // Before the boxes this lane shows (scrolled out on the left, or older than its window).
      const before = x < area.left || (i === 0 && Number(boxes[0].dataset.offset) > offset);
      return { x: Math.max(x, area.left), before: before };
    }
    return { x: area.right + BOX_GAP / 2, before: false };
  }

  function placeMarks() {
    const placed = [];
    document.querySelectorAll(".lane").forEach(function (lane) {
      const marks = lane.querySelector(".lane-marks");
      const events = lane.querySelector(".lane-events");
      if (!marks || !events) return;
      const origin = marks.getBoundingClientRect().left;
      const shown = events.getBoundingClientRect();
      const area = { origin: origin, left: shown.left - origin, right: shown.right - origin, width: marks.clientWidth };
      const boxes = events.querySelectorAll(".event[data-offset], .txn-marker[data-offset]");
      const found = [];
      marks.querySelectorAll("[data-marker]").forEach(function (mark) {
        found.push({ mark: mark, at: boundary(boxes, Number(mark.dataset.offset), area) });
      });
      placed.push({ marks: marks, area: area, found: found });
    });
    // Reads above, writes below: one layout for all the lanes.
    placed.forEach(function (lane) {
      lane.found.forEach(function (f) {
        f.mark.style.left = f.at.x + "px";
        f.mark.classList.toggle("is-before", f.at.before);
        const bandClass = { committed: ".lag-band", lso: ".open-band" }[f.mark.dataset.marker];
        if (!bandClass) return;
        const band = lane.marks.querySelector(bandClass);
        if (!band) return;
        band.style.left = f.at.x + "px";
        band.style.width = Math.max(0, lane.area.right - f.at.x) + "px";
      });
      lane.marks.classList.add("is-placed");
    });
    placed.forEach(function (lane) { placeLabels(lane.found, lane.area.width); });
  }

  // The committed offset's name goes left of its line, a reader's right of its own (it reads
  // ahead); then each name moves right just enough not to cover the one before it.
  function placeLabels(found, width) {
    const labels = found.map(function (f) {
      const label = f.mark.querySelector(".mark-label");
      const w = label.offsetWidth;
      const wanted = f.mark.dataset.marker === "committed" ? f.at.x - w - LABEL_GAP : f.at.x + LABEL_GAP;
      return { label: label, x: f.at.x, w: w, left: Math.min(Math.max(wanted, 0), width - w) };
    });
    labels.sort(function (a, b) { return a.left - b.left; });
    for (let i = 1; i < labels.length; i++) {
      labels[i].left = Math.max(labels[i].left, labels[i - 1].left + labels[i - 1].w + LABEL_GAP);
    }
    labels.forEach(function (l) { l.label.style.left = l.left - l.x + "px"; });
  }

  // The inspected box, by its lane and offset: a box redrawn in place (marked poison) stays selected.
  let selected = null;

  function markSelected(event) {
    const box = event.target.closest && event.target.closest(".event[data-offset]");
    if (!box) return;
    document.querySelectorAll(".event.is-selected").forEach(function (el) { el.classList.remove("is-selected"); });
    box.classList.add("is-selected");
    selected = { lane: box.parentElement.id, offset: box.dataset.offset };
  }

  function keepSelected() {
    if (!selected || document.querySelector(".event.is-selected")) return;
    const lane = document.getElementById(selected.lane);
    const box = lane && lane.querySelector('.event[data-offset="' + selected.offset + '"]');
    if (box) box.classList.add("is-selected");
  }

  // Tell the lab's socket when a push is drawn: the server sends the next records push then, so
  // pushes never queue up faster than this browser draws them.
  function sayDrawn(event) {
    if (!event.target.matches || !event.target.matches("[data-lab-socket]")) return;
    const socket = event.detail.socketWrapper;
    requestAnimationFrame(function () { setTimeout(function () { socket.send("drawn"); }, 0); });
  }

  document.addEventListener("htmx:wsAfterMessage", function (event) { trimLanes(); markProgress(); keepSelected(); placeMarks(); sayDrawn(event); });
  window.addEventListener("resize", placeMarks);
  document.addEventListener("click", markSelected);
})();
