"""OrderService's transactions without a broker: how Kafka's errors are told apart, what the runner
publishes of an open transaction, how a record crosses the channel layer, the timeout lever's
bounds, and the transaction as each viewer's page draws it."""

from __future__ import annotations

from datetime import datetime

import pytest
from confluent_kafka import KafkaError, KafkaException

from kafkalab.kafka.errors import KafkaRefused, KafkaUnavailable, ProducerFenced, TransactionAbortable
from kafkalab.kafka.producer import Delivered
from kafkalab.kafka.transactions import TIMEOUT_MS_MAX, TIMEOUT_MS_MIN, kafka_error
from kafkalab.labs import live_view
from kafkalab.labs.access import Role
from kafkalab.labs.forms import TransactionTimeoutForm
from kafkalab.labs.live_view import Viewer
from kafkalab.labs.models import Lab
from kafkalab.labs.services.transactions import timeout_refusal
from kafkalab.runner.live import LabLive
from kafkalab.runner.model import live_data
from kafkalab.runner.protocol import TxnProduce, txn_record, txn_record_parts
from kafkalab.runner.transactions import LabTransaction, OpenTransaction, Outcome

# --- Kafka's errors, told apart -------------------------------------------------------------------


def failed(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "broker said no", **flags))


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (failed(KafkaError._FENCED, fatal=True), ProducerFenced),
        (failed(KafkaError.PRODUCER_FENCED), ProducerFenced),
        (failed(KafkaError.INVALID_PRODUCER_EPOCH), ProducerFenced),
        (failed(KafkaError._FATAL), ProducerFenced),
        (failed(KafkaError.INVALID_TXN_STATE, fatal=True), ProducerFenced),
        (failed(KafkaError.MSG_SIZE_TOO_LARGE, txn_requires_abort=True), TransactionAbortable),
        (failed(KafkaError._TIMED_OUT, retriable=True), KafkaUnavailable),
        (failed(KafkaError._TRANSPORT), KafkaUnavailable),
        (failed(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED), KafkaRefused),
        (KafkaException("no KafkaError in it"), KafkaUnavailable),
    ],
)
def test_a_failed_transactional_call_maps_to_what_the_runner_must_do(exc, kind):
    mapped = kafka_error(exc, "Kafka did not commit the transaction")

    assert type(mapped) is kind
    assert str(mapped).startswith("Kafka did not commit the transaction: ")


def test_a_fatal_flag_wins_over_an_abortable_one():
    """librdkafka may flag both; a fatal error leaves nothing to abort with."""
    exc = failed(KafkaError.INVALID_TXN_STATE, fatal=True, txn_requires_abort=True)

    assert isinstance(kafka_error(exc, "x"), ProducerFenced)


# --- The open transaction, as the runner publishes it ----------------------------------------------

BEGAN = datetime.fromisoformat("2030-01-02T03:04:05+00:00").timestamp()


def open_transaction(**fields) -> OpenTransaction:
    return OpenTransaction(
        key="k1", transactional_id="lab-7.order-service", timeout_ms=30_000, began_at=BEGAN, **fields
    )


def test_the_brokers_clock_starts_with_the_first_record_not_at_begin():
    txn = open_transaction()
    assert txn.deadline is None
    assert txn.data()["deadline"] is None

    txn.note_written([Delivered(2, 10, 0), Delivered(0, 4, 0)], sent_at=BEGAN + 5)
    txn.note_written([Delivered(2, 11, 0)], sent_at=BEGAN + 9)

    assert txn.deadline == BEGAN + 5 + 30
    assert txn.first_offsets == {0: 4, 2: 10}
    assert txn.data() == {
        "key": "k1",
        "transactional_id": "lab-7.order-service",
        "began_at": "2030-01-02T03:04:05.000+00:00",
        "timeout_ms": 30_000,
        "deadline": "2030-01-02T03:04:40.000+00:00",
        "records": 3,
        "partitions": [0, 2],
    }


def test_the_live_model_carries_the_transaction_and_how_the_last_one_ended():
    live = LabLive(7)
    assert live_data(live)["transaction"] is None
    assert live_data(live)["transaction_ended"] is None

    current = open_transaction().data()
    live.note_transaction(current=current, ended=None)
    assert live_data(live)["transaction"] == current

    ended = {"outcome": "committed", "message": "Committed", "records": 1, "at": "x"}
    live.note_transaction(current=None, ended=ended)
    assert live_data(live)["transaction"] is None
    assert live_data(live)["transaction_ended"] == ended

    live.reset()
    assert live_data(live)["transaction_ended"] is None


def test_kafka_ending_a_transaction_is_the_timeout_past_its_deadline_and_a_fencing_before():
    lab = LabTransaction(7, live=LabLive(7), on_change=lambda: None)
    due = open_transaction()
    due.note_written([Delivered(0, 0, 0)], sent_at=0.0)  # its deadline passed long ago
    fresh = open_transaction()
    fresh.note_written([Delivered(0, 0, 0), Delivered(1, 0, 0)], sent_at=BEGAN + 10**9)

    timed_out, fenced = lab._kafka_abort(due), lab._kafka_abort(fresh)

    assert timed_out["outcome"] == Outcome.TIMED_OUT
    assert timed_out["message"].startswith("The broker aborted the transaction after its timeout")
    assert "30 s" in timed_out["message"] and "1 record " in timed_out["message"]
    assert fenced["outcome"] == Outcome.FENCED
    assert "another producer with the same transactional.id" in fenced["message"].lower()
    assert "this transaction was aborted" in fenced["message"] and "2 records" in fenced["message"]


# --- Records across the channel layer ---------------------------------------------------------------


def test_a_record_crosses_the_channel_layer_as_plain_data_whatever_its_bytes():
    key, value = b"\xff\x00order-1", bytes(range(256))
    headers = [("event-type", b"OrderCreated"), ("nul", None), ("bin", b"\x80\x81")]

    wire = txn_record(key=key, value=value, headers=headers)
    command = TxnProduce(lab_id=7, reply_channel="r", transaction="k1", records=[wire]).as_message()

    assert all(isinstance(v, str) or v is None for v in (wire["key"], wire["value"]))
    assert txn_record_parts(TxnProduce.parse(command).records[0]) == (key, value, headers)
    assert txn_record_parts(txn_record(key=None, value=b"", headers=[])) == (None, b"", [])


# --- The timeout lever --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [TIMEOUT_MS_MIN, 30_000, TIMEOUT_MS_MAX])
def test_a_timeout_within_the_bounds_is_taken(value):
    form = TransactionTimeoutForm({"timeout_ms": str(value)})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["timeout_ms"] == value
    assert timeout_refusal(value) is None


@pytest.mark.parametrize("value", [str(TIMEOUT_MS_MIN - 1), str(TIMEOUT_MS_MAX + 1), "0", "-5", "abc", "", "1e9"])
def test_a_bad_timeout_is_a_field_error_naming_the_bounds(value):
    form = TransactionTimeoutForm({"timeout_ms": value})

    assert not form.is_valid()
    [error] = form.errors["timeout_ms"]
    assert "5,000 to 300,000 ms" in error, error


def test_the_lab_names_its_transactional_id_and_the_levers_bounds():
    lab = Lab(pk=7)

    assert lab.transactional_id == "lab-7.order-service"
    assert lab.transaction_timeout_range == (TIMEOUT_MS_MIN, TIMEOUT_MS_MAX)
    assert lab.transaction_timeout_ms == 30_000


# --- The transaction on each viewer's page ------------------------------------------------------------

PANELS = {
    "lanes": [],
    "groups": [{"id": "g", "state": "EMPTY", "state_label": "Empty", "protocol": None, "assignor": None, "members": [], "committed": {}, "lag": {}, "error": None}],
    "consumers": [],
    "rebalances": [],
    "outbox": {"sent": 0, "duplicates": 0, "missed": 0, "missed_records": [], "recent": []},
}  # fmt: skip


def with_transaction(current: dict | None, ended: dict | None = None) -> dict:
    return {**PANELS, "transaction": current, "transaction_ended": ended}


def transaction_part(html: str) -> str:
    start = html.index('<div id="txn-live"')
    return html[start : html.index("</div>\n", html.index('class="txn', start)) + 7]


def test_an_open_transaction_shows_its_deadline_and_the_owners_buttons_only():
    txn = open_transaction()
    txn.note_written([Delivered(1, 3, 0)], sent_at=BEGAN)
    panels = with_transaction(txn.data())

    owner = live_view.ViewerPage(Viewer(lab_id=7, role=Role.OWNER)).panels(panels)
    observer = live_view.ViewerPage(Viewer(lab_id=7, role=Role.OBSERVER, share_token="t")).panels(panels)

    for html in (owner, observer):
        assert 'data-txn-state="open"' in html and 'hx-swap-oob="true"' in html
        assert 'data-txn-deadline="2030-01-02T03:04:35.000+00:00"' in html
        assert "at 03:04:35 UTC" in html, "a plain-text deadline for pages without JavaScript"
        assert 'data-txn-records="1"' in html and "P1" in html
    for button in (">Commit</button>", ">Abort</button>", ">Leave open</button>"):
        assert button in owner
    assert "<button" not in observer and "<form" not in observer and "csrf" not in observer
    part = transaction_part(owner)
    assert 'data-control="commit-transaction"' in part and 'data-control="abort-transaction"' in part, "for Show me"
    assert 'data-control="commit"' not in part and 'data-control="abort"' not in part, "the lanes' markers' names"


def test_no_open_transaction_offers_begin_and_says_how_the_last_one_ended():
    ended = {"outcome": "timed_out", "message": "The broker aborted the transaction after its timeout.", "records": 2}
    page = live_view.ViewerPage(Viewer(lab_id=7, role=Role.OWNER))

    html = page.panels(with_transaction(None, ended))

    assert 'data-txn-state="none"' in html and 'data-txn-outcome="timed_out"' in html
    assert "The broker aborted the transaction after its timeout." in html
    assert ">Begin transaction</button>" in html
    assert 'id="txn-live"' not in page.panels(with_transaction(None, ended)), "an unchanged part is not sent again"
    assert 'id="txn-live"' in page.panels(with_transaction(open_transaction().data()))
