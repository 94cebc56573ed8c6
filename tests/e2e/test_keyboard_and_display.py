"""The lab page for the keyboard, a screen reader and a projector, in Chromium on a real lab.

Keyboard alone: Tab reaches every control with a visible focus ring and a name, a lane's box opens
the inspector with Enter, and focus neither gets lost nor trapped. A burst is announced in a
throttled summary, never record by record. "Large display" scales the page without a horizontal
scrollbar at 1280×720 and is remembered; `prefers-reduced-motion` stops the boxes' animation.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_lab_page import create_order, fact, wait_until_current
from tests.harness.browser import VIEWPORT
from tests.harness.lab_page import add_consumer, open_lab, reset_lab

pytestmark = pytest.mark.e2e

# Bounds on waiting, not expectations of speed.
LIVE_TIMEOUT_MS = 20_000
ANNOUNCED_WITHIN_SECONDS = 30.0
# How far Tab walks from the top: past the header, the lesson, the order form and the lanes, into the panels after.
TAB_STOPS = 60
# lanes.js says what arrived at most every 5 s; timers may fire a little early or late.
MIN_SECONDS_BETWEEN_ANNOUNCEMENTS = 4.0
BURST = 200
SMALL_SCREEN = {"width": 1280, "height": 720}
NORMAL_ROOT_PX = 17.0

# What the focused element is, whether a focus indicator shows on it, and its accessible name
# (aria-label, aria-labelledby, its <label>s, its text, its title, a button's value).
FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  const style = getComputedStyle(el);
  const byIds = (ids) => ids.split(/\\s+/).map(id => document.getElementById(id)).filter(Boolean).map(e => e.innerText).join(' ');
  const name = el.getAttribute('aria-label')
    || (el.getAttribute('aria-labelledby') && byIds(el.getAttribute('aria-labelledby')))
    || (el.labels && Array.from(el.labels).map(l => l.innerText).join(' '))
    || el.innerText || el.getAttribute('title') || (el.type === 'submit' ? el.value : '') || '';
  return {
    tag: el.tagName.toLowerCase(),
    id: el.id,
    name: name.trim(),
    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== 'none',
    inInspector: !!el.closest('#inspector'),
    isBox: el.matches('.lane-events > .event[data-offset]'),
    partition: el.dataset.partition ?? null,
    offset: el.dataset.offset ?? null,
  };
}"""

# Every change of the announcer, with when it happened and what it then said.
WATCH_ANNOUNCER_JS = """() => {
  window.announced = [];
  const region = document.getElementById('lab-announcer');
  new MutationObserver(() => window.announced.push({ at: performance.now(), text: region.textContent }))
    .observe(region, { childList: true, characterData: true, subtree: true });
}"""

SAID = re.compile(r"(\d+)(?: new records?)? in partition (\d+)")


def focused(page: Page) -> dict | None:
    return page.evaluate(FOCUSED_JS)


def tab(page: Page, key: str = "Tab") -> dict:
    page.keyboard.press(key)
    state = focused(page)
    assert state is not None, f"{key} left focus nowhere"
    return state


def assert_visible_and_named(state: dict, step: int) -> None:
    assert state["outline"] or state["shadow"], f"tab stop {step} ({state}) shows no focus indicator"
    assert state["name"], f"tab stop {step} ({state}) has no accessible name"


def said_per_partition(texts: list[str]) -> dict[int, int]:
    """The records the announcements said arrived, added up per partition of the orders topic."""
    said: dict[int, int] = {}
    for text in texts:
        for count, partition in SAID.findall(text.split(";")[0]):
            said[int(partition)] = said.get(int(partition), 0) + int(count)
    return said


def root_font_px(page: Page) -> float:
    return page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")


def scrolls_sideways(page: Page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth > document.documentElement.clientWidth")


# --- tests ----------------------------------------------------------------------------------


def test_the_keyboard_alone_reaches_the_controls_and_opens_a_box_in_the_inspector(live_server_url, page):
    open_lab(page, live_server_url)
    create_order(page)
    create_order(page)
    # From the top of a freshly drawn page.
    page.reload()
    expect(page.locator(".lane-events > .event[data-offset]")).to_have_count(2, timeout=LIVE_TIMEOUT_MS)

    # The first TAB_STOPS stops from the top (fewer if Tab leaves the page first): each shows a focus
    # indicator and has a name, and among them are the order form's button and a lane's box.
    seen = []
    for step in range(1, TAB_STOPS + 1):
        page.keyboard.press("Tab")
        state = focused(page)
        if state is None:
            break
        assert_visible_and_named(state, step)
        seen.append(state)
    names = [s["name"] for s in seen]
    assert "Create order" in names, f"Tab never reached Create order: {names}"
    boxes = [s for s in seen if s["isBox"]]
    # Each lane is one tab stop, so the lanes' boxes don't stand between the form and the panels after.
    lanes_with_boxes = page.locator(".lane-events:has(> .event[data-offset])").count()
    assert len(boxes) == lanes_with_boxes, f"expected each lane with boxes to be one tab stop: {names}"
    assert names.index("Create order") < names.index(boxes[0]["name"])
    # Back to the lane's box, with Shift+Tab.
    for _ in range(len(seen)):
        box = tab(page, "Shift+Tab")
        if box["isBox"]:
            break
    assert box["isBox"], "Shift+Tab never came back to the lane"

    # Enter opens that record in the inspector, marks its box, and moves focus to the inspector.
    page.keyboard.press("Enter")
    inspector = page.locator("#inspector")
    expect(fact(inspector, "Partition")).to_have_text(box["partition"])
    expect(fact(inspector, "Offset")).to_have_text(box["offset"])
    opened = page.locator(f'#lane-{box["partition"]}-events > .event[data-offset="{box["offset"]}"]')
    expect(opened).to_have_class(re.compile(r"\bis-selected\b"))
    expect(page.locator("#inspector-heading")).to_be_focused()
    assert_visible_and_named(focused(page), 0)

    # A link leads back to the box.
    back = tab(page)
    assert back["inInspector"] and back["name"] == f"Back to offset {box['offset']} in partition {box['partition']}"
    page.keyboard.press("Enter")
    expect(opened).to_be_focused()
    # The arrow keys move along the lane; Enter opens the box they reach.
    page.keyboard.press("ArrowLeft")
    other = focused(page)
    assert other["isBox"] and other["partition"] == box["partition"]
    page.keyboard.press("Enter")
    expect(fact(inspector, "Offset")).to_have_text(other["offset"])
    expect(page.locator("#inspector-heading")).to_be_focused()
    # Escape in the inspector goes back to the box too.
    page.keyboard.press("Escape")
    expect(page.locator(f'#lane-{box["partition"]}-events > .event[data-offset="{other["offset"]}"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#inspector-heading")).to_be_focused()

    # No trap: Tab goes on through the inspector and out of it (past the page's end, to the browser).
    for step in range(1, 40):
        if step > 1:
            page.keyboard.press("Tab")
        state = focused(page)
        if state is None or not state["inInspector"]:
            break
        assert_visible_and_named(state, step)
    else:
        pytest.fail("Tab never left the inspector")


def test_a_burst_is_announced_in_a_few_summaries_that_add_up_to_what_arrived(live_server_url, page):
    topic = open_lab(page, live_server_url)
    assert page.locator(".lanes [aria-live], .lanes[aria-live]").count() == 0, "a lane must not be a live region"
    page.evaluate(WATCH_ANNOUNCER_JS)
    started = time.monotonic()

    page.get_by_label("Random orders").fill(str(BURST))
    page.get_by_role("button", name="Burst").click()
    expect(page.get_by_test_id("produce-outcome")).to_contain_text(f"Kafka acknowledged all {BURST} orders")
    ends, _ = wait_until_current(page, topic)
    assert sum(ends.values()) == BURST

    # The last records are said at most one throttle period after they were drawn.
    deadline = time.monotonic() + ANNOUNCED_WITHIN_SECONDS
    while True:
        announced = page.evaluate("() => window.announced")
        said = said_per_partition([a["text"] for a in announced])
        if sum(said.values()) >= BURST or time.monotonic() > deadline:
            break
        page.wait_for_timeout(250)
    elapsed = time.monotonic() - started
    texts = [a["text"] for a in announced]

    # Each announcement names partitions and how many new records each got...
    assert texts, "nothing was announced"
    assert all(SAID.search(text) and "new record" in text for text in texts), texts
    # ...and together they say what Kafka got, partition by partition.
    assert sum(said.values()) <= BURST, texts
    assert said == {p: end for p, end in ends.items() if end}, texts
    # A few summaries, never one per record: at most one per throttle period.
    assert len(announced) <= 1 + elapsed / MIN_SECONDS_BETWEEN_ANNOUNCEMENTS, texts
    gaps = [(b["at"] - a["at"]) / 1000 for a, b in zip(announced, announced[1:], strict=False)]
    assert all(gap >= MIN_SECONDS_BETWEEN_ANNOUNCEMENTS for gap in gaps), gaps


def test_large_display_scales_the_lab_without_sideways_scrolling_and_is_remembered(live_server_url, browser):
    context = browser.new_context(viewport=SMALL_SCREEN)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        open_lab(page, live_server_url)
        for _ in range(3):
            create_order(page)
        expect(page.locator(".lane-events > .event[data-offset]")).to_have_count(3, timeout=LIVE_TIMEOUT_MS)
        toggle = page.get_by_role("button", name="Large display")
        expect(toggle).to_have_attribute("aria-pressed", "false")
        assert root_font_px(page) == NORMAL_ROOT_PX
        assert not scrolls_sideways(page)

        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        assert root_font_px(page) > NORMAL_ROOT_PX
        assert not scrolls_sideways(page)

        # Remembered, and applied before the page is drawn (no flash): already on at DOMContentLoaded.
        page.reload(wait_until="domcontentloaded")
        assert page.evaluate("() => document.documentElement.classList.contains('display-large')")
        expect(page.get_by_role("button", name="Large display")).to_have_attribute("aria-pressed", "true")
        expect(page.locator(".lane-events > .event[data-offset]")).to_have_count(3, timeout=LIVE_TIMEOUT_MS)
        assert root_font_px(page) > NORMAL_ROOT_PX
        assert not scrolls_sideways(page)
        # On every page of the site.
        page.get_by_role("link", name="Lessons", exact=True).click()
        expect(page.get_by_role("button", name="Large display")).to_have_attribute("aria-pressed", "true")
        assert not scrolls_sideways(page)

        page.get_by_role("button", name="Large display").click()
        expect(page.get_by_role("button", name="Large display")).to_have_attribute("aria-pressed", "false")
        assert root_font_px(page) == NORMAL_ROOT_PX
        page.reload()
        expect(page.get_by_role("button", name="Large display")).to_have_attribute("aria-pressed", "false")
        assert root_font_px(page) == NORMAL_ROOT_PX
    finally:
        context.close()


def new_box_style(page: Page) -> tuple[str, str]:
    """A new order's box, as drawn when it lands: its classes and its animation's name. A box that
    came in a redraw of the whole lanes (as after the lab learns its partitions) is quiet whatever
    the motion setting: another order then."""
    for _ in range(3):
        order_id, _, _ = create_order(page)
        box = page.locator(f'.lane-events > .event[data-key="{order_id}"]')
        expect(box).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        classes, animation = box.evaluate("el => [el.className, getComputedStyle(el).animationName]")
        if "event--quiet" not in classes:
            return classes, animation
    pytest.fail("every new box came in a redraw of the lanes")


@pytest.mark.parametrize(("motion", "animation"), [("no-preference", "land"), ("reduce", "none")])
def test_a_new_box_lands_with_an_animation_unless_motion_is_reduced(live_server_url, browser, motion, animation):
    context = browser.new_context(viewport=VIEWPORT, reduced_motion=motion)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        open_lab(page, live_server_url)
        _, animation_name = new_box_style(page)
        assert animation_name == animation
        if motion == "reduce":
            assert page.evaluate("() => document.getAnimations().length") == 0
    finally:
        context.close()


# Every change of the page's announcer (the panels' news), with what it then said.
WATCH_PAGE_ANNOUNCER_JS = """() => {
  window.pageSaid = [];
  const region = document.getElementById('page-announcer');
  new MutationObserver(() => window.pageSaid.push(region.textContent))
    .observe(region, { childList: true, characterData: true, subtree: true });
}"""


def test_a_rebalance_and_a_passed_step_are_announced_once_in_words(live_server_url, page):
    open_lab(page, live_server_url)
    page.get_by_role("button", name="Begin this lesson").click()
    expect(page.locator('[data-step-status="current"]')).to_have_count(1)
    page.evaluate(WATCH_PAGE_ANNOUNCER_JS)
    try:
        name = add_consumer(page)
        region = page.locator("#page-announcer")
        expect(region).to_contain_text(f"{name} reads P0, P1, P2, P3.", timeout=LIVE_TIMEOUT_MS)

        create_order(page)  # the first step, "Write an event", passes in Kafka
        expect(region).to_contain_text("Lesson 1: 1 of 4 steps passed. Now: ", timeout=LIVE_TIMEOUT_MS)
        said = page.evaluate("() => window.pageSaid")
        # Redraws that changed nothing said nothing: each piece of news was said once.
        readers = [text for text in said if f"{name} reads P0, P1, P2, P3." in text]
        steps = [text for text in said if "1 of 4 steps passed" in text]
        assert len(readers) == 1 and len(steps) == 1, said
    finally:
        reset_lab(page)
