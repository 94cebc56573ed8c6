"""Offsets as a picture: a lane's committed-offset and position markers, its lag band and its lag
chart, rendered from the lane's plain data as the runner publishes it."""

from __future__ import annotations

import re

import pytest

from kafkalab.labs import live_view
from kafkalab.labs.access import Role
from kafkalab.labs.live_view import Viewer
from kafkalab.runner import model
from kafkalab.runner.lag_history import LagHistory
from kafkalab.runner.live import LabLive


def history(points: list[int], now: int | None = None) -> dict:
    return {
        "span_seconds": 180,
        "seconds_per_point": 2.0,
        "points": points,
        "now": points[-1] if now is None and points else now,
        "peak": max(points, default=None),
    }


def lane(partition: int = 2, **data) -> dict:
    return {
        "partition": partition, "leader": 1, "isr": [1, 2, 3], "log_start": 0, "log_end": 20,
        "last_stable": 20, "committed": 6, "lag": 14, "owner": "c1", "owner_colour": "#2b59c3",
        "position": 9, "positions": [{"consumer": "c1", "position": 9, "colour": "#2b59c3"}],
        "lag_history": history([0, 3, 40, 14]), **data,
    }  # fmt: skip


GROUP = {"id": "g", "state": "STABLE", "state_label": "Stable", "protocol": "CLASSIC", "assignor": "range", "members": [], "committed": {}, "lag": {}, "error": None}  # fmt: skip
PANELS = {
    "groups": [GROUP],
    "consumers": [],
    "rebalances": [],
    "outbox": {"sent": 0, "duplicates": 0, "missed": 0, "missed_records": [], "recent": []},
}


def page() -> live_view.ViewerPage:
    return live_view.ViewerPage(Viewer(lab_id=7, role=Role.OWNER))


def element(html: str, element_id: str) -> str:
    match = re.search(rf'<div [^>]*id="{element_id}".*?</div>', html, flags=re.S)
    assert match, f"no #{element_id} in {html[:800]}"
    return match.group(0)


def test_the_committed_offset_and_each_readers_position_are_markers_with_names():
    marks = element(page().panels({**PANELS, "lanes": [lane()]}), "lane-2-marks")

    assert 'data-marker="committed" data-offset="6"' in marks
    assert 'data-marker="position" data-reader="c1" data-offset="9"' in marks
    assert "committed<" in marks and ">c1<" in marks, "named, never told by colour alone"
    assert "> reads offset 9 next<" in marks and "> offset 6<" in marks, "and said in words to a screen reader"
    assert 'class="lag-band" data-offset="6"' in marks, "the lag runs from the committed offset"


def test_no_committed_marker_nor_lag_band_before_the_group_commits():
    marks = element(page().panels({**PANELS, "lanes": [lane(committed=None, lag=None, positions=[])]}), "lane-2-marks")

    assert "data-marker" not in marks and "lag-band" not in marks


def test_no_lag_band_once_the_group_has_committed_everything():
    marks = element(page().panels({**PANELS, "lanes": [lane(committed=20, lag=0)]}), "lane-2-marks")

    assert 'data-marker="committed" data-offset="20"' in marks and "lag-band" not in marks


def test_the_lag_chart_is_an_svg_with_a_label_that_says_it_in_words():
    chart = element(page().panels({**PANELS, "lanes": [lane()]}), "lane-2-lag")

    assert "data-lag-chart" in chart and 'data-partition="2"' in chart and 'hx-swap-oob="true"' in chart
    assert 'aria-label="Lag of partition 2 over the last 3 minutes: now 14, peak 40"' in chart
    assert 'viewBox="0 0 90 20"' in chart
    [points] = re.findall(r'<polyline points="([^"]+)"', chart)
    xy = [tuple(float(n) for n in point.split(",")) for point in points.split()]
    assert [x for x, _ in xy] == [86.5, 86.5, 87.5, 88.5, 89.5, 89.5], "the newest on the right, closed at the bottom"
    assert [y for _, y in xy] == pytest.approx([20, 19, 17.65, 1, 12.7, 20], abs=0.06), (
        "from no lag (19) to the peak (1), closed at the bottom (20)"
    )


def test_a_chart_with_nothing_to_draw_yet_says_so():
    chart = element(page().panels({**PANELS, "lanes": [lane(lag_history=history([]))]}), "lane-2-lag")

    assert "data-lag-chart" in chart and "<svg" not in chart and "nothing committed yet" in chart


def test_the_lanes_a_viewer_connects_to_carry_markers_and_charts():
    html = page().model({**PANELS, "lab": {"topic": "lab-7.orders"}, "lanes": [lane(p, records=[]) for p in range(4)]})

    for p in range(4):
        assert f'id="lane-{p}-marks"' in html and f'data-lag-chart data-partition="{p}"' in html
    assert "hx-swap-oob" not in element(html, "lane-0-lag"), "drawn in place, inside the lanes"


def test_records_pushes_leave_the_chart_alone_and_the_next_panels_redraw_it():
    viewer = page()
    viewer.panels({**PANELS, "lanes": [lane()]})
    without_history = {key: value for key, value in lane(log_end=21, lag=15).items() if key != "lag_history"}

    records = viewer.records(appends=[], lanes=[without_history])
    panels = viewer.panels({**PANELS, "lanes": [lane(log_end=21, lag=15, lag_history=history([0, 3, 40, 15]))]})
    again = viewer.panels({**PANELS, "lanes": [lane(log_end=21, lag=15, lag_history=history([0, 3, 40, 15]))]})

    assert 'id="lane-2-meta"' in records and 'id="lane-2-marks"' in records
    assert "data-lag-chart" not in records, "no chart with records"
    assert "now 15, peak 40" in element(panels, "lane-2-lag")
    assert 'id="lane-2-meta"' not in panels, "the offsets were sent with the records: only the chart goes"
    assert again == "", "an unchanged chart is not sent again"


def test_the_model_gives_each_lane_its_readers_positions_and_lag_history():
    live = LabLive(1)
    reader, killed = live.consumer("c1", {}), live.consumer("c2", {})
    reader.status, reader.assigned, reader.positions = "running", [0, 2], {0: 5, 2: 9, 3: 1}
    killed.status, killed.assigned, killed.positions = "killed", [], {1: 4}
    ring = LagHistory()
    ring.sample(3, now=100.0)

    positions = live.positions()
    data = model.lane_data(
        partition=2, state=None, log_end=12, committed=8, owner=reader,
        positions=positions.get(2, []), lag_history=ring.as_data(),
    )  # fmt: skip

    assert positions.keys() == {0, 2}, "a killed consumer reads nothing; a partition it no longer holds is not its"
    assert data["positions"] == [{"consumer": "c1", "position": 9, "colour": reader.colour}]
    assert (data["lag"], data["lag_history"]["points"], data["lag_history"]["now"]) == (4, [3], 3)
