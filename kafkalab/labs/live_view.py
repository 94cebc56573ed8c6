"""The lab's live model rendered for one viewer: HTML fragments for the websocket to push.

The runner publishes data; each websocket connection renders it here, for its own viewer. An
owner's fragments carry the consumer cards' Stop, Kill and Restart buttons; an observer's carry
no button, no form and no token. (Buttons post with the CSRF header that base.html sets from the
page's own request; nothing here renders a token.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlencode

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from kafkalab.labs.access import Role

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

    @cached_property
    def events_url(self) -> str:
        """The lab's event URLs up to the partition: `{events_url}{partition}/{offset}/`. A busy
        lane renders a hundred boxes a push, and reversing each box's URL cost more than the rest."""
        url = reverse("labs:event", args=(self.lab_id, 0, 0))
        return url.removesuffix("0/0/")


def _context(viewer: Viewer, **data: object) -> dict:
    return {"viewer": viewer, "lab_id": viewer.lab_id, "oob": True, **data}


class ViewerPage:
    """What one viewer's page shows now, so that each push renders only what changed for it: a
    busy lab changes its lane offsets and outbox several times a second, its timeline rarely,
    and rendering is the costliest part of a push."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.newest: dict[int, int] = {}  # partition → newest offset shown
        self.shown: dict[str, object] = {}  # part → the data it was last rendered from

    def model(self, model: dict) -> str:
        """Everything live on the page, for a viewer that just connected (or after a reset)."""
        self.newest = newest_offsets(model["lanes"])
        self.shown = {}
        lanes = render_to_string(
            "labs/panels/lanes.html",
            _context(
                self.viewer, lanes=model["lanes"], topic=model["lab"]["topic"], lane_window=settings.LAB_LANE_WINDOW
            ),
        )
        # The lanes just drawn carry their offsets and charts: remember them as shown.
        self._changed_lanes(model["lanes"])
        self._changed_charts(model["lanes"])
        return lanes + self.panels(model)

    def records(self, *, appends: list[dict], lanes: list[dict]) -> str:
        """New boxes appended to their lanes (none this page already has), and changed offsets."""
        # A few boxes land with a short animation; more than that at once simply appear.
        appends = [
            {**append, "quiet": len(append["records"]) > ANIMATED_BOXES} for append in unseen(appends, self.newest)
        ]
        return render_to_string(
            "labs/panels/lane_appends.html", _context(self.viewer, appends=appends, lanes=self._changed_lanes(lanes))
        )

    def panels(self, panels: dict) -> str:
        """The lane offsets, group, timeline and outbox that changed since this page last got them."""
        [group] = panels["groups"]
        parts = {
            "group": {"group": group, "consumers": panels["consumers"]},
            "rebalances": {"rebalances": panels["rebalances"]},
            "outbox": {"outbox": panels["outbox"]},
        }
        html = [
            render_to_string("labs/panels/lane_meta.html", _context(self.viewer, lane=lane))
            for lane in self._changed_lanes(panels["lanes"])
        ]
        html += [
            render_to_string("labs/panels/lag_chart.html", _context(self.viewer, lane=lane))
            for lane in self._changed_charts(panels["lanes"])
        ]
        for part, data in parts.items():
            if self.shown.get(part) != data:
                self.shown[part] = data
                html.append(render_to_string(f"labs/panels/{part}.html", _context(self.viewer, **data)))
        return "".join(html)

    def _changed_lanes(self, lanes: list[dict]) -> list[dict]:
        """Lanes whose offsets, owner or markers changed (their records and chart go apart)."""
        changed = []
        for lane in lanes:
            meta = {key: value for key, value in lane.items() if key not in ("records", "lag_history")}
            if self.shown.get(f"lane-{lane['partition']}") != meta:
                self.shown[f"lane-{lane['partition']}"] = meta
                changed.append(meta)
        return changed

    def _changed_charts(self, lanes: list[dict]) -> list[dict]:
        """Lanes whose lag history changed: it gains a point a second at most."""
        changed = []
        for lane in lanes:
            if "lag_history" in lane and self.shown.get(f"lag-{lane['partition']}") != lane["lag_history"]:
                self.shown[f"lag-{lane['partition']}"] = lane["lag_history"]
                changed.append(lane)
        return changed


class RecordsBacklog:
    """Records that came while the browser was still drawing the last push: they go out together
    in the next one, at most `window` per lane (a lane shows no more)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._records: dict[int, list[dict]] = {}
        self.lanes: list[dict] | None = None  # the lanes' offsets with the newest of them

    def add(self, *, appends: list[dict], lanes: list[dict]) -> None:
        for append in appends:
            records = self._records.setdefault(append["partition"], [])
            records.extend(append["records"])
            del records[: -self.window]
        self.lanes = lanes

    def clear(self) -> None:
        self._records, self.lanes = {}, None

    def take(self) -> tuple[list[dict], list[dict]] | None:
        """(appends, lanes) to push, or None when nothing waits."""
        if not self._records and self.lanes is None:
            return None
        appends = [{"partition": p, "records": records} for p, records in sorted(self._records.items())]
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
