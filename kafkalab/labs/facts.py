"""The numbers a learner reads, each computed once, here, from the lab's live model.

Lag, duplicate and missed emails and a rebalance's duration appear on the page, in state.json,
and (later) in lesson checks and on the instructor's dashboard; they all come from these
functions, so they can never disagree. Pure functions: no Kafka, no database.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

Where = tuple[int, int]  # (partition, offset)


def lag(*, log_end: int | None, committed: int | None) -> int | None:
    """How many records the group has not committed yet; unknown until both ends are known."""
    if log_end is None or committed is None:
        return None
    return max(0, log_end - committed)


def peak_lag(lags: Iterable[int]) -> int | None:
    """The highest lag in a stretch of time; unknown when nothing was known of it."""
    return max(lags, default=None)


def is_duplicate(times_emailed: int) -> bool:
    """An email for a record that had already been emailed."""
    return times_emailed > 1


def duplicates(email_counts: Mapping[Where, int]) -> int:
    """How many emails were duplicates, given how often each record was emailed."""
    return sum(count - 1 for count in email_counts.values() if is_duplicate(count))


def never_happened(email_counts: Mapping[Where, int], aborted: Container[Where]) -> int:
    """Emails sent for records Kafka holds as aborted: a read_uncommitted consumer emailed an
    order whose transaction was then rolled back, so the order never happened."""
    return sum(count for where, count in email_counts.items() if where in aborted)


@dataclass(frozen=True)
class Missed:
    partition: int
    offset: int
    key: str | None


def missed(
    *,
    records: Iterable[tuple[int, int, str | None]],
    committed: Mapping[int, int],
    emailed: Container[Where],
    in_flight: Container[Where],
) -> list[Missed]:
    """Records the group has committed past that no consumer emailed (and none is emailing now):
    the group will never read them again, so their emails are lost."""
    found = [
        Missed(partition, offset, key)
        for partition, offset, key in records
        if partition in committed
        and offset < committed[partition]
        and (partition, offset) not in emailed
        and (partition, offset) not in in_flight
    ]
    return sorted(found, key=lambda m: (m.partition, m.offset))


def duration_ms(*, started_at: float, ended_at: float | None) -> int | None:
    """A rebalance's duration, from its cause to the last assignment change; None while it runs."""
    return None if ended_at is None else round((ended_at - started_at) * 1000)


# Invoices are counted per orderId over the newest this many orderIds: memory stays bounded
# however many orders a lab bills, and a duplicate is an invoice for an orderId already invoiced.
INVOICED_ORDERS_REMEMBERED = 20_000


class InvoiceCount:
    """BillingService's invoices as a read_committed reader of the invoices topic gets them:
    how many, how many were duplicates (a second or later invoice for one order) and how many
    orders were invoiced. Fed each invoice's orderId once, in the order Kafka delivers them."""

    def __init__(self, remembered: int = INVOICED_ORDERS_REMEMBERED) -> None:
        self.remembered = remembered
        self._per_order: dict[str, int] = {}  # orderId → invoices, oldest orderId first
        self.invoices = 0
        self.duplicates = 0
        self.orders_invoiced = 0

    def add(self, order_id: str | None) -> None:
        """One invoice; one without an orderId it can be matched by counts as an invoice only."""
        self.invoices += 1
        if order_id is None:
            return
        seen = self._per_order.get(order_id, 0)
        if is_duplicate(seen + 1):
            self.duplicates += 1
        else:
            self.orders_invoiced += 1
            if len(self._per_order) >= self.remembered:
                del self._per_order[next(iter(self._per_order))]
        self._per_order[order_id] = seen + 1

    def as_data(self) -> dict[str, int]:
        return {"invoices": self.invoices, "duplicates": self.duplicates, "orders_invoiced": self.orders_invoiced}
