// What changed, said to screen readers once, in words the server chose. A panel the websocket
// redraws whole (the cluster, the group, the lesson, the classroom's banner) carries its news in
// `data-announce`; when a redraw brings other words than the last, they go to the page's one
// polite status region. A region redrawn whole is not read out reliably, and redraws with nothing
// new must stay silent: at a thousand records a second the panels redraw often and change rarely.
// The words on the page when it loads are its starting point, not news.
(function () {
  "use strict";

  const said = new Map(); // element id → the words it last carried

  function look(isNews) {
    const news = [];
    document.querySelectorAll("[data-announce][id]").forEach(function (panel) {
      const words = panel.dataset.announce;
      const before = said.get(panel.id);
      said.set(panel.id, words);
      if (isNews && before !== undefined && words && words !== before) news.push(words);
    });
    const region = document.getElementById("page-announcer");
    if (!news.length || !region) return;
    const text = news.join(" ");
    // The same words again would not be read out again: a no-break space makes them new.
    region.textContent = text === region.textContent ? text + "\u00a0" : text;
  }

  document.addEventListener("DOMContentLoaded", function () { look(false); });
  document.addEventListener("htmx:wsAfterMessage", function () { look(true); });
  document.addEventListener("htmx:afterSettle", function () { look(true); });
})();
