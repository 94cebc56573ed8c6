"""Lesson 10, walked on a real lab and the embedded registry: Avro records carry the schema id;
a registry reader resolves them; BACKWARD refuses a rename (409) and accepts a field with a
default; FULL refuses removing customerId, BACKWARD accepts it and the running registry reader
then fails. Refusals reach the lesson from the registry itself."""

from __future__ import annotations

from tests.integration.consumer_groups.lessons.support import Contract, LessonWalk, flat
from tests.integration.consumer_groups.support import Lab, LabSocket, wait_for

SLUG = "schema-registry"


def versions(lab: Lab) -> list[int]:
    """The lab subject's versions as state.json has them (from the server's embedded registry)."""
    [subject] = lab.state()["schema_registry"]["subjects"]
    assert subject["subject"] == f"lab-{lab.lab_id}.orders-value" and subject["compatibility"] == "BACKWARD"
    return subject["versions"]


def test_schema_registry_step_by_step(lab: Lab, page: LabSocket):
    walk = LessonWalk(lab, SLUG)
    contract = Contract(lab)
    walk.begin()

    # a. Avro through the registry: the record starts with the magic byte and the schema id.
    contract.switch("avro")
    partition, offset = lab.order()
    why = flat(walk.wait_passed("avro-on"))
    assert f"The record at partition {partition}, offset {offset} starts with the byte 0" in why, why

    # b. A registry reader emails it.
    reader = lab.add_consumer(reader="registry", failure_policy="skip")
    wait_for(lambda: lab.consumers()[reader]["assigned"], f"{reader} getting partitions")
    lab.order()
    why = flat(walk.wait_passed("registry-reads"))
    assert f"{reader} (registry reader) emailed order" in why, why

    # c. BACKWARD refuses renaming customerId: nothing is registered.
    walk.predict("rename-refused", 1)
    assert contract.use("rename-customer-id").status == 409
    why = flat(walk.wait_passed("rename-refused"))
    assert f"The registry refused a new version of lab-{lab.lab_id}.orders-value under BACKWARD" in why, why

    assert versions(lab) == [1], "the refused version was not registered"

    # d. A field with a default is a compatible change, and the registry reader still reads it.
    assert contract.use("add-currency").status == 200
    assert versions(lab) == [1, 2]
    lab.order()
    why = flat(walk.wait_passed("safe-evolution"))
    assert "Version 2 of" in why and f"emailed by {reader} (registry reader)" in why, why

    # e. FULL refuses removing customerId.
    contract.level("FULL")
    assert contract.use("remove-customer-id").status == 409
    why = flat(walk.wait_passed("full-refuses-removal"))
    assert "Under FULL the registry refused" in why, why

    # f. BACKWARD lets the removal through, and the running registry reader fails on it.
    contract.level("BACKWARD")
    walk.predict("backward-lets-removal-through", 1)
    assert contract.use("remove-customer-id").status == 200
    partition, offset = lab.order()
    why = flat(walk.wait_passed("backward-lets-removal-through"))
    assert f"{reader} (registry reader) could not process the record at partition {partition}, offset {offset}" in why
    assert "customerId" in why, why
