"""OrderService's transactions: begin, commit, abort, and the transaction.timeout.ms lever.

The transactional producer lives in the lab runner (kafkalab.runner.transactions), never in a web
process: a classroom runs several, and a second init_transactions() for the lab's transactional.id
would fence the first. So these services ask the runner and report its answer. The runner writes
what it knows onto the Lab row (transaction_open, transaction_ended) and settles the orders written
in a transaction, through the two functions at the end of this module, before it answers.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from kafkalab.kafka.producer import Delivered, OutgoingRecord, SendResult
from kafkalab.kafka.transactions import TIMEOUT_MS_MAX, TIMEOUT_MS_MIN
from kafkalab.labs.errors import LabError
from kafkalab.labs.models import Lab, LabOrder
from kafkalab.runner.protocol import (
    Reply,
    RunnerUnavailable,
    TxnAbort,
    TxnBegin,
    TxnCommit,
    TxnProduce,
    runner_ask_sync,
    txn_record,
)

# A command may wait on the coordinator twice (a failed commit is aborted): well past the
# producer's own call timeouts, so the runner's answer, not this wait, says what happened.
ASK_TIMEOUT_SECONDS = 45.0
TRANSACTION_FIELDS = ["transaction_open", "transaction_ended", "transaction_timeout_ms"]


def timeout_bounds() -> str:
    return f"{TIMEOUT_MS_MIN:,} to {TIMEOUT_MS_MAX:,} ms ({TIMEOUT_MS_MIN // 1000} s to {TIMEOUT_MS_MAX // 60_000} min)"


def timeout_refusal(timeout_ms: int) -> str | None:
    """Why a transaction.timeout.ms can't be used, naming the bounds; None when it can."""
    if TIMEOUT_MS_MIN <= timeout_ms <= TIMEOUT_MS_MAX:
        return None
    return f"transaction.timeout.ms must be {timeout_bounds()}; {timeout_ms:,} ms is not."


def _ask(lab: Lab, make_command) -> dict:
    """The runner's answer to a transaction command; its refusal as a LabError. Either way the
    lab's transaction fields are read again: the runner wrote them before answering."""
    try:
        answer: Reply = runner_ask_sync(make_command, timeout=ASK_TIMEOUT_SECONDS)
    except RunnerUnavailable as exc:
        raise LabError(str(exc)) from exc
    finally:
        lab.refresh_from_db(fields=TRANSACTION_FIELDS)
    if answer.error:
        raise LabError(answer.error)
    return answer.data


def transaction_begin(*, lab: Lab) -> str:
    """Begin a transaction: the order buttons write into it until it is committed or aborted."""
    if lab.transaction_open:
        raise LabError("A transaction is already open: commit it, abort it or leave it open. One at a time.")
    timeout_ms = lab.transaction_timeout_ms
    _ask(lab, lambda reply: TxnBegin(lab_id=lab.pk, reply_channel=reply, timeout_ms=timeout_ms))
    return (
        f"Transaction begun ({lab.transactional_id}). Orders now go into it: read_committed readers see none "
        f"of them until you commit. The broker aborts it by itself {timeout_ms // 1000:g} s after its first record."
    )


def transaction_commit(*, lab: Lab) -> str:
    data = _ask(lab, lambda reply: TxnCommit(lab_id=lab.pk, reply_channel=reply))
    return data["message"]


def transaction_abort(*, lab: Lab) -> str:
    data = _ask(lab, lambda reply: TxnAbort(lab_id=lab.pk, reply_channel=reply))
    return data["message"]


def transaction_leave_open(*, lab: Lab) -> str:
    """Nothing to do in Kafka: the transaction simply stays open, and the broker's clock runs."""
    lab.refresh_from_db(fields=TRANSACTION_FIELDS)
    if not lab.transaction_open:
        raise LabError("There is no open transaction to leave open. Begin one first.")
    if not lab.transaction_open.get("deadline"):
        return "The transaction stays open. It holds no record yet, so the broker's clock has not started."
    return (
        "The transaction stays open: read_committed readers wait at the last stable offset, and the broker "
        "aborts it by itself when its timeout runs out, unless you commit or abort it first."
    )


def transaction_timeout_set(*, lab: Lab, timeout_ms: int) -> str:
    """The lever: transaction.timeout.ms of the next transaction begun."""
    if refusal := timeout_refusal(timeout_ms):
        raise LabError(refusal)
    Lab.objects.filter(pk=lab.pk).update(transaction_timeout_ms=timeout_ms)
    lab.transaction_timeout_ms = timeout_ms
    applies = "the next transaction you begin" if lab.transaction_open else "transactions you begin from now on"
    return f"transaction.timeout.ms is {timeout_ms:,} ms for {applies}."


def transaction_produce(*, lab: Lab, key: str, records: list[OutgoingRecord], partitioner: str) -> SendResult:
    """Write records into the lab's open transaction `key`, through the runner. All or nothing: if
    Kafka refuses one, the runner aborts the transaction and this raises LabError saying so."""
    wire = [txn_record(key=r.key, value=r.value, headers=r.headers) for r in records]
    data = _ask(
        lab,
        lambda reply: TxnProduce(
            lab_id=lab.pk, reply_channel=reply, transaction=key, records=wire, partitioner=partitioner
        ),
    )
    return SendResult(delivered=[Delivered(*delivered) for delivered in data["delivered"]])


# --- Written by the lab runner ------------------------------------------------------------------


def transaction_state_save(*, lab_id: int, current: dict | None, ended: dict | None) -> None:
    """What the runner knows of the lab's transaction now, for pages rendered over HTTP."""
    Lab.objects.filter(pk=lab_id).update(transaction_open=current, transaction_ended=ended)


def transaction_orders_settle(*, lab_id: int, key: str, committed: bool) -> None:
    """The orders written in transaction `key`: a commit makes them count (new orders acknowledged,
    lifecycle events applied); an abort, by anyone, undoes them (new orders deleted)."""
    with transaction.atomic():
        written = LabOrder.objects.filter(lab_id=lab_id, transaction_key=key)
        if committed:
            written.filter(acknowledged=True).exclude(pending_status="").update(
                status=F("pending_status"), pending_status="", transaction_key=""
            )
            written.update(acknowledged=True, transaction_key="")
        else:
            written.filter(acknowledged=False).delete()
            written.update(pending_status="", transaction_key="")


def transactions_forget_all(*, message: str) -> None:
    """A fresh runner holds no producer: the transactions an earlier run left open are the broker's
    to abort now. Their orders are undone, and each lab says what happened."""
    for lab in Lab.objects.filter(transaction_open__isnull=False).only("pk", "transaction_open"):
        key = (lab.transaction_open or {}).get("key")
        if key:
            transaction_orders_settle(lab_id=lab.pk, key=key, committed=False)
        ended = {"outcome": "abandoned", "message": message, "records": lab.transaction_open.get("records", 0)}
        transaction_state_save(lab_id=lab.pk, current=None, ended=ended)
