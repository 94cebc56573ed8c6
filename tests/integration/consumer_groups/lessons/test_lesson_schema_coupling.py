"""Lesson 9, walked on a real lab: a strict reader emails an order of version 1 and fails on
the same order with a `sku` added; a tolerant reader emails that one and fails once customerId
is renamed. The explanations quote the readers' own messages."""

from __future__ import annotations

from tests.integration.consumer_groups.lessons.support import Contract, LessonWalk, flat
from tests.integration.consumer_groups.support import Lab, LabSocket, wait_for

SLUG = "schema-coupling"


def assigned(lab: Lab, name: str) -> None:
    wait_for(lambda: lab.consumers()[name]["assigned"], f"{name} getting partitions")


def test_schema_coupling_step_by_step(lab: Lab, page: LabSocket):
    walk = LessonWalk(lab, SLUG)
    contract = Contract(lab)
    walk.begin()
    assert walk.statuses() == {
        "strict-reads": "current",
        "sku-breaks-strict": "pending",
        "tolerant-reads": "pending",
        "rename-breaks-tolerant": "pending",
    }

    # a. A strict reader emails an order written with version 1.
    strict = lab.add_consumer(reader="strict", failure_policy="skip")
    assigned(lab, strict)
    partition, offset = lab.order()
    why = flat(walk.wait_passed("strict-reads"))
    assert f"{strict}, reading strict, emailed order" in why and f"(partition {partition}, offset {offset})" in why, why

    # b. With sku added, the same reader refuses the next order: it rejects what it does not know.
    walk.predict("sku-breaks-strict", 1)
    assert contract.use("add-sku").status == 200
    partition, offset = lab.order()
    why = flat(walk.wait_passed("sku-breaks-strict"))
    assert f"{strict} (strict reader) could not process the record at partition {partition}, offset {offset}" in why
    assert "'sku' was unexpected" in why, why
    assert "What its failure policy did: skipped" in why, why

    # c. A tolerant reader emails orders that carry sku.
    assert lab.act(strict, "stop").status == 200
    tolerant = lab.add_consumer(reader="tolerant", failure_policy="skip")
    assigned(lab, tolerant)
    partition, offset = lab.order()
    why = flat(walk.wait_passed("tolerant-reads"))
    assert f"{tolerant} (tolerant reader) emailed order" in why and f"offset {offset})" in why, why

    # d. Renaming customerId takes away a field the tolerant reader needs.
    walk.predict("rename-breaks-tolerant", 1)
    assert contract.use("rename-customer-id").status == 200
    partition, offset = lab.order()
    why = flat(walk.wait_passed("rename-breaks-tolerant"))
    assert f"{tolerant} (tolerant reader) could not process the record at partition {partition}" in why, why
    assert "'customerId' is a required property" in why, why
