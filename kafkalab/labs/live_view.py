"""The lab's live model rendered for one viewer: HTML fragments for the websocket to push.

The runner publishes data; each websocket connection renders it here, for its own viewer. An
owner's fragments carry the consumer cards' Stop, Kill and Restart buttons; an observer's carry
no button, no form and no token. (Buttons post with the CSRF header that base.html sets from the
page's own request; nothing here renders a token.)

A lab draws several topics as lanes, each a "view": the orders topic (the model's `lanes`) and its
other topics (the model's `views`: the dead-letter and invoices topics). Each view's lanes sit in an element
carrying `data-topic`; their element ids start with the view's prefix (none for the orders lanes).
The lanes of a view whose model carries transaction marks (`txn`, `markers`: the orders and the
invoices, not the dead letters) show them alike.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlencode

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from kafkalab.labs.access import Role
from kafkalab.labs.templatetags.lab_format import control_marker_insert_html, dom_prefix, event_box_html
from kafkalab.runner.protocol import ORDERS_VIEW

ANIMATED_BOXES = 3  # per lane and push


@dataclass(frozen=True)
class Viewer:
    lab_id: int
    role: Role
    share_token: str | None = None

    @property
    def can_act(self) -> bool:
        return self.role.can_act

    @property
    def query(self) -> str:
        """What an observer's links carry so that reads know them (their session owns nothing)."""
        return "" if self.can_act or not self.share_token else "?" + urlencode({"share": self.share_token})

    def query_for(self, view: str) -> str:
        """`query`, and for a box of another topic than the orders, which topic the inspector reads."""
        if view == ORDERS_VIEW:
            return self.query
        return (self.query + "&" if self.query else "?") + urlencode({"view": view})

    @cached_property
    def events_url(self) -> str:
        """The lab's event URLs up to the partition: `{events_url}{partition}/{offset}/`. A busy
        lane renders a hundred boxes a push, and reversing each box's URL cost more than the rest."""
        url = reverse("labs:event", args=(self.lab_id, 0, 0))
        return url.removesuffix("0/0/")


def _context(viewer: Viewer, **data: object) -> dict:
    return {"viewer": viewer, "lab_id": viewer.lab_id, "oob": True, **data}


def topic_views(model: dict) -> list[dict]:
    """Every topic the lab draws as lanes, in page order: the orders topic, then the others."""
    orders = {"view": ORDERS_VIEW, "topic": model["lab"]["topic"], "lanes": model["lanes"]}
    return [orders, *model.get("views", [])]


def poison_marks(poison: list[dict]) -> dict[tuple[int, int], dict]:
    """The model's poison records by (partition, offset) of the orders topic."""
    return {(mark["partition"], mark["offset"]): mark for mark in poison}


def txn_marks(lane: dict) -> dict[int, str]:
    """A lane's records of an open or aborted transaction: offset → "open" or "aborted"."""
    txn = lane.get("txn") or {}
    return {**dict.fromkeys(txn.get("open", ()), "open"), **dict.fromkeys(txn.get("aborted", ()), "aborted")}


def with_markers(records: list[dict], markers: list[dict], partition: int) -> list[dict]:
    """A lane's records with its COMMIT and ABORT markers between them, in offset order (only
    markers among or after the records: older ones scrolled out with their records)."""
    if not markers:
        return records
    oldest = records[0]["offset"] if records else -1
    shown = [{**marker, "partition": partition} for marker in markers if marker["offset"] > oldest]
    return sorted([*records, *shown], key=lambda item: item["offset"])


class ViewerPage:
    """What one viewer's page shows now, so that each push renders only what changed for it: a
    busy lab changes its lane offsets and outbox several times a second, its timeline rarely,
    and rendering is the costliest part of a push."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.window = settings.LAB_LANE_WINDOW
        self.newest: dict[str, dict[int, int]] = {}  # view → partition → newest offset shown
        # The records each lane shows, by (view, partition) (lanes.js keeps the newest `window`),
        # to redraw a box that turns out to be poison or aborted after it was drawn.
        self.drawn: dict[tuple[str, int], deque[dict]] = {}
        self.poison: dict[tuple[int, int], dict] = {}  # the orders records marked poison
        # Per (view, partition): the transaction marks the page shows, and its markers' offsets.
        self.txn: dict[tuple[str, int], dict[int, str]] = {}
        self.markers: dict[tuple[str, int], set[int]] = {}
        self.shown: dict[str, object] = {}  # part → the data it was last rendered from

    def model(self, model: dict) -> str:
        """Everything live on the page, for a viewer that just connected (or after a reset)."""
        views = topic_views(model)
        self.shown = {}
        self.poison = poison_marks(model.get("poison", []))
        self.newest = {view["view"]: newest_offsets(view["lanes"]) for view in views}
        lanes = [(view["view"], lane) for view in views for lane in view["lanes"]]
        self.drawn = {(v, lane["partition"]): deque(lane.get("records", []), maxlen=self.window) for v, lane in lanes}
        self.txn = {(v, lane["partition"]): txn_marks(lane) for v, lane in lanes}
        self.markers = {(v, lane["partition"]): {m["offset"] for m in lane.get("markers", [])} for v, lane in lanes}
        html = "".join(self._view_html(view) for view in views)
        # The lanes just drawn carry their offsets, charts and marks: remember them as shown.
        for view in views:
            self._changed_lanes(view["lanes"])
        self._changed_charts(model["lanes"])
        return html + self.panels(model)

    def _view_html(self, view: dict) -> str:
        lanes = [
            {
                **lane,
                "records": with_markers(
                    self._marked(view["view"], lane.get("records", [])), lane.get("markers", []), lane["partition"]
                ),
            }
            for lane in view["lanes"]
        ]
        if view["view"] == ORDERS_VIEW:
            context = _context(self.viewer, lanes=lanes, topic=view["topic"], lane_window=self.window)
            return render_to_string("labs/panels/lanes.html", context)
        prefix = dom_prefix(view["view"])
        context = _context(
            self.viewer, view={**view, "lanes": lanes}, topic=view["topic"], prefix=prefix, lane_window=self.window
        )
        return render_to_string("labs/panels/topic_lanes.html", context)

    def records(self, *, appends: list[dict], lanes: list[dict]) -> str:
        """New boxes appended to their lanes (none this page already has), and changed offsets;
        then boxes whose transaction marks changed, and markers found since."""
        redrawn = self._newly_txn_marked(lanes)
        fresh = []
        for view, view_appends in _by_view(appends).items():
            for append in unseen(view_appends, self.newest.setdefault(view, {})):
                records = append["records"]
                self.drawn.setdefault((view, append["partition"]), deque(maxlen=self.window)).extend(records)
                records = self._marked(view, records)
                # A few boxes land with a short animation; more than that at once simply appear.
                quiet = len(records) > ANIMATED_BOXES
                fresh.append({**append, "view": view, "prefix": dom_prefix(view), "records": records, "quiet": quiet})
        html = render_to_string(
            "labs/panels/lane_appends.html", _context(self.viewer, appends=fresh, lanes=self._changed_lanes(lanes))
        )
        return html + "".join(redrawn) + self._new_markers(lanes)

    def panels(self, panels: dict) -> str:
        """The lane offsets, group, timeline and outbox that changed since this page last got them."""
        [group] = panels["groups"]
        parts = {
            "group": {"group": group, "consumers": panels["consumers"]},
            "rebalances": {"rebalances": panels["rebalances"]},
            "outbox": {"outbox": panels["outbox"]},
            "transaction": {"transaction": panels.get("transaction"), "ended": panels.get("transaction_ended")},
            "billing": {"billing": panels.get("billing")},
        }
        lanes = [*panels["lanes"], *(lane for view in panels.get("views", []) for lane in view["lanes"])]
        html = [self._lane_metas_html(self._changed_lanes(lanes))]
        html += self._newly_txn_marked(lanes)
        html.append(self._new_markers(lanes))
        html += [
            render_to_string("labs/panels/lag_chart.html", _context(self.viewer, lane=lane))
            for lane in self._changed_charts(panels["lanes"])
        ]
        html += [self._count_html(view) for view in panels.get("views", []) if self._count_changed(view)]
        html += self._newly_poisoned(poison_marks(panels.get("poison", [])))
        for part, data in parts.items():
            if self.shown.get(part) != data:
                self.shown[part] = data
                html.append(render_to_string(f"labs/panels/{part}.html", _context(self.viewer, **data)))
        return "".join(html)

    def _lane_metas_html(self, lanes: list[dict]) -> str:
        return (
            render_to_string("labs/panels/lane_appends.html", _context(self.viewer, appends=[], lanes=lanes))
            if lanes
            else ""
        )

    def _count_changed(self, view: dict) -> bool:
        key = f"count-{view['view']}"
        changed = self.shown.get(key) != view["records"]
        self.shown[key] = view["records"]
        return changed

    def _count_html(self, view: dict) -> str:
        context = _context(self.viewer, view=view, prefix=dom_prefix(view["view"]))
        return render_to_string("labs/panels/view_count.html", context)

    def _marked(self, view: str, records: list[dict]) -> list[dict]:
        """The records of a lane of `view`, those known to be poison (orders only) or in an open or
        aborted transaction carrying their marks (copied: the model is shared)."""
        if not self.poison and not any(self.txn.values()):
            return records
        return [self._mark(view, record) for record in records]

    def _mark(self, view: str, record: dict) -> dict:
        where = (record["partition"], record["offset"])
        poison = self.poison.get(where) if view == ORDERS_VIEW else None
        txn = self.txn.get((view, record["partition"]), {}).get(record["offset"])
        if poison is None and txn is None:
            return record
        marks = {"poison": poison} if poison is not None else {}
        return {**record, **marks, **({"txn": txn} if txn else {})}

    def _newly_txn_marked(self, lanes: list[dict]) -> list[str]:
        """Boxes this page shows whose transaction mark changed (open → aborted, or open →
        committed, which has none): each is redrawn in place."""
        boxes = []
        for lane in lanes:
            if "txn" not in lane:  # a view without transaction marks (the dead letters)
                continue
            view = lane.get("view", ORDERS_VIEW)
            where, marks = (view, lane["partition"]), txn_marks(lane)
            before = self.txn.get(where, {})
            if marks == before:
                continue
            self.txn[where] = marks
            changed = {offset for offset in {*marks, *before} if marks.get(offset) != before.get(offset)}
            for record in self.drawn.get(where, ()):
                if record["offset"] in changed:
                    box = event_box_html(self.viewer, self._mark(view, record), quiet=True, view=view, replace=True)
                    boxes.append(box)
        return boxes

    def _new_markers(self, lanes: list[dict]) -> str:
        """COMMIT and ABORT markers this page does not show yet: each goes before the first box
        past its offset, or at the lane's end."""
        html = []
        for lane in lanes:
            if not lane.get("markers"):
                continue
            view, partition = lane.get("view", ORDERS_VIEW), lane["partition"]
            drawn = self.drawn.get((view, partition), ())
            oldest = drawn[0]["offset"] if drawn else -1
            shown = self.markers.setdefault((view, partition), set())
            for marker in lane["markers"]:
                if marker["offset"] in shown or marker["offset"] < oldest:
                    continue
                shown.add(marker["offset"])
                after = next((r["offset"] for r in drawn if r["offset"] > marker["offset"]), None)
                html.append(control_marker_insert_html({**marker, "partition": partition}, before=after, view=view))
            shown.difference_update({offset for offset in shown if offset < oldest})
        return "".join(html)

    def _newly_poisoned(self, marks: dict[tuple[int, int], dict]) -> list[str]:
        """Boxes this page shows whose record became poison (or whose mark changed) since it
        drew them: each is redrawn in place, marked; its lane stays as it is."""
        if marks == self.poison:
            return []
        changed = [where for where, mark in marks.items() if self.poison.get(where) != mark]
        self.poison = marks
        boxes = []
        for partition, offset in changed:
            record = next((r for r in self.drawn.get((ORDERS_VIEW, partition), ()) if r["offset"] == offset), None)
            if record is not None:
                boxes.append(event_box_html(self.viewer, self._mark(ORDERS_VIEW, record), quiet=True, replace=True))
        return boxes

    def _changed_lanes(self, lanes: list[dict]) -> list[dict]:
        """Lanes whose offsets, owner or markers changed (their records and chart go apart)."""
        changed = []
        for lane in lanes:
            prefix = dom_prefix(lane.get("view", ORDERS_VIEW))
            meta = {key: value for key, value in lane.items() if key not in ("records", "lag_history")}
            if self.shown.get(f"{prefix}lane-{lane['partition']}") != meta:
                self.shown[f"{prefix}lane-{lane['partition']}"] = meta
                changed.append({**meta, "prefix": prefix})
        return changed

    def _changed_charts(self, lanes: list[dict]) -> list[dict]:
        """Lanes whose lag history changed: it gains a point a second at most."""
        changed = []
        for lane in lanes:
            if "lag_history" in lane and self.shown.get(f"lag-{lane['partition']}") != lane["lag_history"]:
                self.shown[f"lag-{lane['partition']}"] = lane["lag_history"]
                changed.append(lane)
        return changed


def _by_view(appends: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for append in appends:
        grouped.setdefault(append.get("view", ORDERS_VIEW), []).append(append)
    return grouped


class RecordsBacklog:
    """Records that came while the browser was still drawing the last push: they go out together
    in the next one, at most `window` per lane (a lane shows no more)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._records: dict[tuple[str, int], list[dict]] = {}  # (view, partition) → records
        self.lanes: list[dict] | None = None  # the lanes' offsets with the newest of them

    def add(self, *, appends: list[dict], lanes: list[dict]) -> None:
        for append in appends:
            records = self._records.setdefault((append.get("view", ORDERS_VIEW), append["partition"]), [])
            records.extend(append["records"])
            del records[: -self.window]
        self.lanes = lanes

    def clear(self) -> None:
        self._records, self.lanes = {}, None

    def take(self) -> tuple[list[dict], list[dict]] | None:
        """(appends, lanes) to push, or None when nothing waits."""
        if not self._records and self.lanes is None:
            return None
        appends = [{"view": v, "partition": p, "records": records} for (v, p), records in sorted(self._records.items())]
        taken = (appends, self.lanes or [])
        self.clear()
        return taken


def newest_offsets(lanes: list[dict]) -> dict[int, int]:
    """Per partition, the newest offset among the lanes' records."""
    return {lane["partition"]: lane["records"][-1]["offset"] for lane in lanes if lane.get("records")}


def unseen(appends: list[dict], shown: dict[int, int]) -> list[dict]:
    """The appended records newer than what this page shows; `shown` is brought up to date."""
    fresh = []
    for append in appends:
        newest = shown.get(append["partition"], -1)
        records = [record for record in append["records"] if record["offset"] > newest]
        if records:
            shown[append["partition"]] = records[-1]["offset"]
            fresh.append({"partition": append["partition"], "records": records})
    return fresh


def lesson_html(viewer: Viewer) -> str:
    """The lab's lesson panel as this viewer sees it (read from the stored progress)."""
    from kafkalab.labs.models import Lab
    from lessons.selectors import lesson_for_page

    lab = Lab.objects.filter(pk=viewer.lab_id).first()
    if lab is None:
        return ""
    context = {"lab": lab, "lesson": lesson_for_page(lab=lab), "can_act": viewer.can_act, "oob": True}
    return render_to_string("lessons/panel.html", context)


def closed_html(reason: str) -> str:
    return render_to_string("labs/panels/closed.html", {"reason": reason})
