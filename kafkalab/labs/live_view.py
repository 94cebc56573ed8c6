"""The lab's live model rendered for one viewer: HTML fragments for the websocket to push.

The runner publishes data; each websocket connection renders it here, for its own viewer. An
owner's fragments carry the consumer cards' Stop, Kill and Restart buttons; an observer's carry
no button, no form and no token. (Buttons post with the CSRF header that base.html sets from the
page's own request; nothing here renders a token.)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.template.loader import render_to_string

from kafkalab.labs.access import Role


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


def _context(viewer: Viewer, **data: object) -> dict:
    return {"viewer": viewer, "lab_id": viewer.lab_id, "oob": True, **data}


def model_html(model: dict, viewer: Viewer) -> str:
    """Everything live on the page, for a viewer that just connected (or after a reset)."""
    lanes = render_to_string(
        "labs/panels/lanes.html",
        _context(viewer, lanes=model["lanes"], topic=model["lab"]["topic"], lane_window=settings.LAB_LANE_WINDOW),
    )
    return lanes + panels_html(model, viewer)


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


def records_html(*, appends: list[dict], lanes: list[dict], viewer: Viewer) -> str:
    """New boxes appended to their lanes, and every lane's offsets."""
    return render_to_string("labs/panels/lane_appends.html", _context(viewer, appends=appends, lanes=lanes))


def panels_html(panels: dict, viewer: Viewer) -> str:
    """Lane offsets, the group and its consumers, the rebalance timeline and the outbox."""
    [group] = panels["groups"]
    return render_to_string(
        "labs/panels/live_panels.html",
        _context(
            viewer,
            lanes=panels["lanes"],
            group=group,
            consumers=panels["consumers"],
            rebalances=panels["rebalances"],
            outbox=panels["outbox"],
            max_consumers=settings.LAB_MAX_CONSUMERS,
        ),
    )


def closed_html(reason: str) -> str:
    return render_to_string("labs/panels/closed.html", {"reason": reason})
