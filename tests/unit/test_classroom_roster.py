"""The instructor's roster: the sort and filter the query string asks for, and the rows they pick
and order. Rows are built by hand, their `live` shaped like kafkalab.runner.model.lab_summary's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.http import QueryDict

from kafkalab.classroom.roster import SORTS, RosterRow, arranged, headers, query_of, view_from

JOINED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def live(*, online: bool = True, lag: int | None = 0, errors: list[str] | None = None) -> dict:
    return {
        "online": online,
        "consumers_running": 1,
        "consumers_live": 1,
        "lag": lag,
        "errors": errors or [],
        "open_transaction": False,
        "billing_live": 0,
        "blocked": [],
    }


def row(name: str, **fields) -> RosterRow:
    fields.setdefault("joined_at", JOINED)
    fields.setdefault("last_seen_at", None)
    return RosterRow(learner_id=hash(name) % 1000, name=name, lab_id=None, **fields)


def names(rows: list[RosterRow]) -> list[str]:
    return [r.name for r in rows]


def view(**changes) -> dict:
    return {"sort": "name", "descending": False, "text": "", "needs_help": False, **changes}


def arrange(rows: list[RosterRow], **changes) -> list[str]:
    return names(arranged(rows, **view(**changes)))


# --- The view a query string asks for ---------------------------------------------------------


def test_an_empty_query_shows_everyone_by_name():
    assert view_from(QueryDict("")) == view()


def test_an_unknown_sort_falls_back_to_the_name():
    assert view_from(QueryDict("sort=password"))["sort"] == "name"


@pytest.mark.parametrize("sort", list(SORTS))
def test_every_sort_a_header_offers_is_taken(sort):
    assert view_from(QueryDict(f"sort={sort}"))["sort"] == sort


def test_only_order_desc_turns_the_order_round():
    assert view_from(QueryDict("order=desc"))["descending"] is True
    assert view_from(QueryDict("order=asc"))["descending"] is False
    assert view_from(QueryDict("order=DESC"))["descending"] is False


def test_the_search_text_is_cut_to_forty_characters():
    assert view_from(QueryDict("q=" + "a" * 100))["text"] == "a" * 40


def test_only_help_1_shows_just_the_labs_needing_help():
    assert view_from(QueryDict("help=1"))["needs_help"] is True
    assert view_from(QueryDict("help=yes"))["needs_help"] is False


@pytest.mark.parametrize(
    "asked",
    [
        view(),
        view(sort="lag", descending=True),
        view(sort="lesson", text="Ada & Bob=1", needs_help=True),
        view(sort="errors", text="ümlaut ok"),
    ],
)
def test_a_view_survives_the_round_trip_through_its_query_string(asked):
    assert view_from(QueryDict(query_of(asked))) == asked


def test_a_view_with_changes_is_the_view_those_links_lead_to():
    asked = view(text="ada", needs_help=True)

    assert view_from(QueryDict(query_of(asked, sort="passed", descending=True))) == {
        **asked,
        "sort": "passed",
        "descending": True,
    }


# --- The column headers -----------------------------------------------------------------------


def test_each_sort_has_a_header_and_only_the_current_one_says_how_it_is_sorted():
    shown = headers(view(sort="lag"))

    assert [h["key"] for h in shown] == list(SORTS)
    assert [h["key"] for h in shown if h["current"]] == ["lag"]
    assert {h["key"]: h["aria_sort"] for h in shown} == {key: "ascending" if key == "lag" else None for key in SORTS}
    assert next(h for h in headers(view(sort="lag", descending=True)) if h["current"])["aria_sort"] == "descending"


def test_clicking_the_current_sort_turns_the_order_round():
    ascending = {h["key"]: h for h in headers(view(sort="lag"))}
    descending = {h["key"]: h for h in headers(view(sort="lag", descending=True))}

    assert view_from(QueryDict(ascending["lag"]["query"]))["descending"] is True
    assert view_from(QueryDict(descending["lag"]["query"]))["descending"] is False


def test_clicking_another_sort_sorts_by_it_ascending_and_keeps_the_filter():
    current = view(sort="lag", descending=True, text="ada", needs_help=True)
    passed = next(h for h in headers(current) if h["key"] == "passed")

    assert view_from(QueryDict(passed["query"])) == {**current, "sort": "passed", "descending": False}


# --- The rows shown, and their order ----------------------------------------------------------


def test_the_search_finds_a_name_or_a_lesson_whatever_the_case():
    rows = [
        row("Ada Lovelace", lesson_title="Consumer groups"),
        row("Bob", lesson_title="Exactly once"),
        row("Carla", lesson_title="Poison records"),
    ]

    assert arrange(rows, text="ADA") == ["Ada Lovelace"]
    assert arrange(rows, text="exactly ONCE") == ["Bob"]
    assert arrange(rows, text="  poison ") == ["Carla"]
    assert arrange(rows, text="nobody") == []
    assert arrange(rows, text="") == ["Ada Lovelace", "Bob", "Carla"]


def test_needing_help_shows_only_the_labs_reporting_an_error():
    rows = [
        row("Ada", live=live(errors=["c1 crashed: boom"])),
        row("Bob", live=live()),
        row("Carla"),  # the runner sent nothing yet
    ]

    assert arrange(rows, needs_help=True) == ["Ada"]
    assert arrange(rows, needs_help=False) == ["Ada", "Bob", "Carla"]


def test_the_roster_sorts_by_name_whatever_the_case():
    rows = [row("carla"), row("Bob"), row("ada")]

    assert arrange(rows) == ["ada", "Bob", "carla"]
    assert arrange(rows, descending=True) == ["carla", "Bob", "ada"]


def test_an_unknown_sort_key_sorts_by_name():
    assert arrange([row("Bob"), row("Ada")], sort="nonsense") == ["Ada", "Bob"]


def test_the_roster_sorts_by_lesson_then_step():
    rows = [
        row("Ada", lesson_order=2, step_number=1),
        row("Bob", lesson_order=1, step_number=3),
        row("Carla", lesson_order=1, step_number=2),
        row("Dan"),  # no lesson started
    ]

    assert arrange(rows, sort="lesson") == ["Dan", "Carla", "Bob", "Ada"]
    assert arrange(rows, sort="lesson", descending=True) == ["Ada", "Bob", "Carla", "Dan"]


def test_the_roster_sorts_by_steps_passed():
    rows = [row("Ada", passed=5), row("Bob", passed=0), row("Carla", passed=9)]

    assert arrange(rows, sort="passed") == ["Bob", "Ada", "Carla"]
    assert arrange(rows, sort="passed", descending=True) == ["Carla", "Ada", "Bob"]


def test_the_roster_sorts_by_last_seen_with_those_online_last():
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    rows = [
        row("Ada", last_seen_at=now - timedelta(minutes=5), live=live(online=True)),
        row("Bob", last_seen_at=now - timedelta(minutes=1), live=live(online=False)),
        row("Carla", last_seen_at=now - timedelta(hours=2), live=live(online=False)),
        row("Dan"),  # never seen
    ]

    assert arrange(rows, sort="seen") == ["Dan", "Carla", "Bob", "Ada"]
    assert arrange(rows, sort="seen", descending=True) == ["Ada", "Bob", "Carla", "Dan"]


def test_a_lab_whose_lag_is_unknown_sorts_before_any_lag():
    rows = [
        row("Ada", live=live(lag=12)),
        row("Bob", live=live(lag=None)),
        row("Carla", live=live(lag=0)),
        row("Dan"),  # the runner sent nothing yet
    ]

    assert arrange(rows, sort="lag") == ["Bob", "Dan", "Carla", "Ada"]
    assert arrange(rows, sort="lag", descending=True) == ["Ada", "Carla", "Dan", "Bob"]


def test_the_roster_sorts_by_how_many_errors_a_lab_reports():
    rows = [
        row("Ada", live=live(errors=["a"])),
        row("Bob", live=live(errors=["a", "b", "c"])),
        row("Carla", live=live()),
    ]

    assert arrange(rows, sort="errors") == ["Carla", "Ada", "Bob"]
    assert arrange(rows, sort="errors", descending=True) == ["Bob", "Ada", "Carla"]


def test_learners_level_on_the_sort_are_listed_by_name():
    rows = [row("carla", passed=1), row("Ada", passed=1), row("bob", passed=0)]

    assert arrange(rows, sort="passed") == ["bob", "Ada", "carla"]


def test_a_row_without_a_summary_is_offline_with_no_errors_and_no_lag():
    quiet = row("Ada")

    assert (quiet.online, quiet.errors, quiet.needs_help, quiet.lag) == (False, [], False, None)
