// Partition lanes: keep each lane to its window of recent events, mark the inspected box, and
// place the committed-offset, position and last-stable-offset markers on the log.
// The server appends new event boxes over the websocket (htmx oob swaps); this trims the oldest
// so the page stays light at any event rate. Every topic's lanes (the orders topic, the
// dead-letter topic) sit in a `.lanes[data-topic]` group with its own window.
// For the keyboard and screen readers: each lane is one tab stop (the arrow keys move along it), a
// box opened with Enter moves focus to the inspector, and new records are announced in a throttled
// summary ("12 new records in partition 2"), never one by one.
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

  // Enter on a focused box clicks its link too, so this marks a box opened from the keyboard as well.
  function markSelected(event) {
    const box = event.target.closest && event.target.closest(".event[data-offset]");
    if (!box || !box.parentElement) return;
    document.querySelectorAll(".event.is-selected").forEach(function (el) { el.classList.remove("is-selected"); });
    box.classList.add("is-selected");
    selected = { lane: box.parentElement.id, offset: box.dataset.offset, partition: box.dataset.partition };
  }

  // A box opens in the inspector. One listener serves every box: htmx would set up each box of
  // each push on its own, a hundred at a time at a high event rate. A click with a modifier (a new
  // tab) is left to the browser, as is any click without JavaScript: the box is a plain link.
  function openInInspector(event) {
    if (event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    const box = event.target.closest && event.target.closest(".lane-events > .event[href]");
    if (!box || !document.getElementById("inspector")) return;
    event.preventDefault();
    htmx.ajax("GET", box.getAttribute("href"), { source: box, target: "#inspector", swap: "outerHTML show:top" });
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

  // --- Keyboard: one tab stop per lane ----------------------------------------------------------
  // A lane holds up to its window of boxes, so Tab would walk a hundred links to get past the
  // lanes: each lane is one tab stop instead (its newest box, or the box last focused in it), and
  // the arrow keys, Home and End move along it.
  function newestBox(lane) {
    for (let el = lane.lastElementChild; el; el = el.previousElementSibling) {
      if (el.matches(".event[data-offset]")) return el;
    }
    return null;
  }

  function keepTabStop(lane) {
    const active = document.activeElement;
    const stop = active && active.parentElement === lane && active.matches(".event") ? active : newestBox(lane);
    // Only boxes not taken out of the tab order yet: the new ones, those redrawn, and the old stop.
    lane.querySelectorAll('.event:not([tabindex="-1"])').forEach(function (box) {
      if (box !== stop) box.tabIndex = -1;
    });
    if (stop) stop.tabIndex = 0;
  }

  function focusBox(lane, box) {
    lane.querySelectorAll('.event[tabindex="0"]').forEach(function (other) { other.tabIndex = -1; });
    box.tabIndex = 0;
    box.focus();
  }

  // Newest on the right: a full lane's oldest boxes are cut off on its left, where no scrolling
  // reaches, so the keys move only among the boxes the learner can see.
  function visibleBoxes(lane) {
    const area = lane.getBoundingClientRect();
    return Array.prototype.filter.call(lane.querySelectorAll(".event[data-offset]"), function (box) {
      const at = box.getBoundingClientRect();
      return at.left >= area.left - 1 && at.right <= area.right + 1;
    });
  }

  function moveAlongLane(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (["ArrowLeft", "ArrowRight", "Home", "End"].indexOf(event.key) < 0) return;
    const target = event.target;
    const lane = target.matches && target.matches(".lane-events") ? target : target.parentElement;
    if (!lane || !lane.matches(".lane-events") || !(target === lane || target.matches(".event"))) return;
    event.preventDefault();
    const boxes = visibleBoxes(lane);
    if (!boxes.length) return;
    const at = boxes.indexOf(target);
    const last = boxes.length - 1;
    let next;
    if (event.key === "Home") next = boxes[0];
    else if (event.key === "End" || target === lane) next = boxes[last];
    else if (at < 0) next = event.key === "ArrowRight" ? boxes[0] : null; // a box slid out of sight
    else next = boxes[event.key === "ArrowLeft" ? Math.max(at - 1, 0) : Math.min(at + 1, last)];
    if (next) focusBox(lane, next);
  }

  // A focused box can leave the page under the learner: redrawn in place (its transaction marks
  // changed) or trimmed from its window. Focus then stays in its lane rather than falling to <body>.
  let focusBefore = null;

  function noteFocus() {
    const active = document.activeElement;
    focusBefore = null;
    if (!active || !active.matches) return;
    if (active.matches(".lane-events > .event")) focusBefore = { lane: active.parentElement.id, offset: active.dataset.offset };
    else if (active.matches(".lane-events")) focusBefore = { lane: active.id, offset: null };
  }

  function keepFocus() {
    const was = focusBefore;
    focusBefore = null;
    if (!was || (document.activeElement && document.activeElement !== document.body)) return;
    const lane = document.getElementById(was.lane);
    if (!lane) return;
    const box = was.offset !== null && lane.querySelector('.event[data-offset="' + was.offset + '"]');
    if (box) {
      box.focus({ preventScroll: true });
    } else {
      lane.tabIndex = -1;
      lane.focus({ preventScroll: true });
    }
  }

  // --- Opening a box: focus to the inspector, and a way back ------------------------------------
  // At a high event rate the opened box is trimmed from its lane within a second, so focus goes to
  // the inspector's heading, with a link (and Escape) back to the box, or to its lane once it is gone.
  function focusInspector(event) {
    const inspector = event.target;
    const source = event.detail && event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!inspector || inspector.id !== "inspector" || !source || !source.matches || !source.matches(".event[data-offset]")) return;
    const heading = inspector.querySelector("h2");
    if (!heading || !selected) return;
    const back = document.createElement("a");
    back.className = "inspector-back";
    back.href = "#" + selected.lane;
    back.dataset.lane = selected.lane;
    back.dataset.offset = selected.offset;
    back.textContent = "Back to offset " + selected.offset + " in partition " + selected.partition;
    const line = document.createElement("p");
    line.appendChild(back);
    heading.insertAdjacentElement("afterend", line);
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true }); // hx-swap's show:top has scrolled the inspector into view
  }

  function goBack(back) {
    const lane = document.getElementById(back.dataset.lane);
    if (!lane) return;
    const box = lane.querySelector('.event[data-offset="' + back.dataset.offset + '"]');
    if (box) {
      focusBox(lane, box);
    } else {
      lane.tabIndex = -1;
      lane.focus();
    }
  }

  function onBack(event) {
    const back = event.target.closest && event.target.closest(".inspector-back");
    if (!back) return;
    event.preventDefault();
    goBack(back);
  }

  function escapeInspector(event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    const inspector = event.target.closest("#inspector");
    const back = inspector && inspector.querySelector(".inspector-back");
    if (back) goBack(back);
  }

  // --- New records, said in summary -------------------------------------------------------------
  // A screen reader cannot keep up with one announcement per record (a burst pushes a hundred boxes
  // at a time), so the lanes' new offsets are added up and said in the page's one polite live
  // region at most every ANNOUNCE_EVERY_MS: "12 new records in partition 2, 3 in partition 0".
  const ANNOUNCE_EVERY_MS = 5000;
  // What a lane's records are called, by how its element id starts (the orders lanes' ids don't say).
  const RECORD_NAMES = { "": ["record", "records"], "dlq-": ["dead letter", "dead letters"], "invoices-": ["invoice", "invoices"] };
  const LANE_ID = /^(.*)lane-(\d+)-events$/;
  const counted = new Map(); // lane element id → { lane: the element, newest: the newest offset counted }
  let unsaid = {}; // id prefix → { partition → new records not announced yet }
  let lastSaid = -Infinity;
  let sayTimer = null;

  function newestOffset(lane) {
    for (let el = lane.lastElementChild; el; el = el.previousElementSibling) {
      if (el.dataset.offset !== undefined) return Number(el.dataset.offset);
    }
    return null;
  }

  // A lane starts from what it shows when first seen (the page opened) or when redrawn whole with
  // older offsets than counted (the lab was reset: new topics): that is the page's state, not news.
  // A lane redrawn whole as it was, only longer (partitions added, a reconnect), counts on.
  function startsOver(lane, seen) {
    if (!seen) return true;
    if (seen.lane === lane) return false;
    const newest = newestOffset(lane);
    return newest === null ? seen.newest >= 0 : newest < seen.newest;
  }

  // The newest offset shown; in an empty lane, the one before its log end (if the page says it).
  function startingPoint(lane) {
    const newest = newestOffset(lane);
    if (newest !== null) return newest;
    const meta = lane.parentElement && lane.parentElement.querySelector(".lane-meta");
    return (meta && meta.dataset.logEnd ? Number(meta.dataset.logEnd) : 0) - 1;
  }

  // Every offset past the newest one counted is a new record, drawn or not (a push carries at most
  // a lane's window; the rest was coalesced away), except a drawn COMMIT/ABORT marker's. Boxes
  // redrawn in place or trimmed sit at offsets already counted. Walks only the new boxes.
  function countNew(lane) {
    const seen = counted.get(lane.id);
    if (startsOver(lane, seen)) {
      counted.set(lane.id, { lane: lane, newest: startingPoint(lane) });
      return;
    }
    seen.lane = lane;
    const since = seen.newest;
    let newest = since;
    let markers = 0;
    for (let el = lane.lastElementChild; el; el = el.previousElementSibling) {
      if (el.dataset.offset === undefined) continue;
      const offset = Number(el.dataset.offset);
      if (offset <= since) break;
      newest = Math.max(newest, offset);
      if (el.classList.contains("txn-marker")) markers++;
    }
    const records = newest - since - markers;
    seen.newest = newest;
    const id = LANE_ID.exec(lane.id);
    if (records <= 0 || !id) return;
    const lanes = unsaid[id[1]] || (unsaid[id[1]] = {});
    lanes[id[2]] = (lanes[id[2]] || 0) + records;
  }

  // "12 new records in partition 2, 3 in partition 0; 2 new dead letters in partition 1."
  function summary(news) {
    const topics = Object.keys(news).sort(function (a, b) { return topicRank(a) - topicRank(b); });
    return topics.map(function (prefix) {
      const names = RECORD_NAMES[prefix] || [prefix + "record", prefix + "records"];
      const lanes = Object.keys(news[prefix]).map(function (p) { return { partition: p, records: news[prefix][p] }; });
      lanes.sort(function (a, b) { return b.records - a.records || a.partition - b.partition; });
      return lanes.map(function (lane, i) {
        const what = i === 0 ? " new " + names[lane.records === 1 ? 0 : 1] : "";
        return lane.records + what + " in partition " + lane.partition;
      }).join(", ");
    }).join("; ") + ".";
  }

  function topicRank(prefix) {
    const rank = Object.keys(RECORD_NAMES).indexOf(prefix);
    return rank < 0 ? 99 : rank;
  }

  function sayLater() {
    if (sayTimer !== null || !Object.keys(unsaid).length) return;
    sayTimer = setTimeout(say, Math.max(0, lastSaid + ANNOUNCE_EVERY_MS - performance.now()));
  }

  function say() {
    sayTimer = null;
    const region = document.getElementById("lab-announcer");
    const text = summary(unsaid);
    unsaid = {};
    if (!region) return;
    // The same words again would not be read out again: a no-break space makes them new.
    region.textContent = text === region.textContent ? text + "\u00a0" : text;
    lastSaid = performance.now();
  }

  function onPush(event) {
    const lanes = document.querySelectorAll(".lanes .lane-events[id]");
    lanes.forEach(countNew);
    trimLanes();
    markProgress();
    keepSelected();
    keepFocus();
    lanes.forEach(keepTabStop);
    placeMarks();
    sayLater();
    sayDrawn(event);
  }

  document.addEventListener("htmx:wsBeforeMessage", noteFocus);
  document.addEventListener("htmx:wsAfterMessage", onPush);
  document.addEventListener("htmx:afterSettle", focusInspector);
  window.addEventListener("resize", placeMarks);
  document.addEventListener("click", markSelected);
  document.addEventListener("click", openInInspector);
  document.addEventListener("click", onBack);
  document.addEventListener("keydown", moveAlongLane);
  document.addEventListener("keydown", escapeInspector);
})();
