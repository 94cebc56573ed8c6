"""How the dashboard words time and help, the join QR code, and names in the progress CSV."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from kafkalab.classroom.qr import qr_svg
from kafkalab.classroom.services import _csv_safe
from kafkalab.classroom.templatetags.classroom_format import needing_help, seen_ago


def ago(**delta) -> datetime:
    return timezone.now() - timedelta(**delta)


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=58), "just now"),
        (timedelta(seconds=61), "1 min ago"),
        (timedelta(minutes=42, seconds=30), "42 min ago"),
        (timedelta(minutes=59, seconds=58), "59 min ago"),
        (timedelta(hours=1, seconds=1), "1 h ago"),
        (timedelta(hours=23, minutes=59), "23 h ago"),
    ],
)
def test_when_a_learner_was_last_seen_is_said_briefly(delta, shown):
    # Taken here, not when the cases are collected: the suite may take seconds before it runs this.
    assert seen_ago(timezone.now() - delta) == shown


def test_a_learner_seen_days_ago_shows_the_date():
    assert seen_ago(datetime(2026, 1, 15, 8, 0, tzinfo=UTC)) == "2026-01-15"


def test_a_clock_slightly_ahead_is_just_now():
    assert seen_ago(timezone.now() + timedelta(seconds=30)) == "just now"


def test_a_learner_never_seen_shows_nothing():
    assert seen_ago(None) == ""


@dataclass
class Row:
    needs_help: bool


def test_the_dashboard_counts_the_labs_needing_help():
    assert needing_help([Row(True), Row(False), Row(True)]) == 2
    assert needing_help([]) == 0


def test_the_join_qr_code_is_an_inline_svg_image():
    svg = qr_svg("https://kafkalab.example/classroom/join/ABCDEF/")

    assert svg.lstrip().startswith("<svg ")
    assert 'role="img"' in svg
    assert 'aria-label="QR code of the join address"' in svg
    assert "<title>QR code: https://kafkalab.example/classroom/join/ABCDEF/</title>" in svg


def test_markup_in_the_join_address_is_escaped_in_the_svg_title():
    svg = qr_svg("https://kafkalab.example/?<script>alert(1)</script>")

    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg


@pytest.mark.parametrize("name", ["=SUM(A1:A9)", "+1", "-1", "@cmd", "\tAda", "\rAda"])
def test_a_name_a_spreadsheet_would_run_as_a_formula_is_written_as_text(name):
    assert _csv_safe(name) == "'" + name


@pytest.mark.parametrize("name", ["Ada", "Ada = Bob", "1+1", "", "'quoted"])
def test_any_other_name_is_written_as_it_is(name):
    assert _csv_safe(name) == name
