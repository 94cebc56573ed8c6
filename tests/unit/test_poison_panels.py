"""What a learner reads of poison records: the consumer card (reader, policy, crash loop) and the
outbox's missed emails, rendered from the model's plain data as the websocket renders them."""

from __future__ import annotations

from django.template.loader import render_to_string

from kafkalab.kafka.consumer_config import ConsumerConfig
from kafkalab.labs.access import Role
from kafkalab.labs.live_view import Viewer
from kafkalab.runner.live import LabLive

OWNER = Viewer(lab_id=7, role=Role.OWNER)


def card(**failures: object) -> str:
    live = LabLive(7)
    consumer = live.consumer("c1", ConsumerConfig(reader="strict", failure_policy="crash"))
    for name, value in failures.items():
        setattr(consumer, name, value)
    data = {
        "name": "c1",
        "pid": None,
        "status": "restarting",
        "live": True,
        "config": consumer.config.as_dict(),
        "last_error": "crashed on the record at partition 1, offset 4: contract: …",
        "assigned": [],
        "positions": {},
        "emailed": 3,
        "colour": "#2b59c3",
        "failures": consumer.failure_data(now=100.0),
    }
    return render_to_string("labs/panels/consumer_card.html", {"c": data, "viewer": OWNER, "lab_id": 7})


def test_the_card_says_which_reader_and_what_happens_to_a_record_it_cannot_read():
    html = card()

    assert 'data-reader="strict" data-policy="crash"' in html
    assert "reader <code>strict</code>" in html


def test_a_crash_looping_card_counts_the_crashes_and_the_wait_before_the_next_start():
    html = card(crashes=3, crash_streak=3, crashed_on=(1, 4), restart_at=103.2)

    assert 'data-crashes="3"' in html and "crashed 3×" in html
    assert "crash-looping on P1@4" in html
    assert 'data-restart-in="4"' in html and "restarting in 4 s" in html
    assert "crashed on the record at partition 1, offset 4" in html, "the last error stays on the card"
    assert ">Stop</button>" in html, "Stop ends the loop"


def test_a_retry_policy_card_says_how_it_retries():
    live = LabLive(7)
    consumer = live.consumer("c1", ConsumerConfig(failure_policy="retry", retry_attempts=2, retry_backoff_ms=250))
    consumer.retries, consumer.dead_lettered = 2, 1
    data = {"name": "c1", "status": "running", "live": True, "config": consumer.config.as_dict(), "assigned": [0]}
    html = render_to_string(
        "labs/panels/consumer_card.html",
        {"c": {**data, "failures": consumer.failure_data()}, "viewer": OWNER, "lab_id": 7},
    )

    assert "retry 2× (first after 250 ms), then dead-letter" in html
    assert "2 retries" in html and "1 dead-lettered" in html


def test_the_outbox_shows_a_skipped_record_as_a_missed_email_with_its_reason():
    outbox = {
        "sent": 1,
        "duplicates": 0,
        "missed": 1,
        "missed_records": [{"partition": 0, "offset": 3, "key": "k"}],
        "recent": [
            {"consumer": "c1", "partition": 0, "offset": 4, "order_id": "o-1", "event_type": "OrderCreated",
             "at": None, "duplicate": False, "missed": False, "reason": None},
            {"consumer": "c1", "partition": 0, "offset": 3, "order_id": None, "event_type": None,
             "at": None, "duplicate": False, "missed": True, "reason": "not-decodable"},
        ],
    }  # fmt: skip

    html = render_to_string("labs/panels/outbox.html", {"outbox": outbox, "viewer": OWNER})

    assert 'data-missed-reason="not-decodable"' in html and "missed: not-decodable" in html
    assert "emailed order <code>o-1</code>" in html
