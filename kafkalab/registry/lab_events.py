"""Tell a lab's runner what the registry did with the lab's subjects.

Lessons check what the registry registered or refused, and a refusal leaves no trace in Kafka or
in the registry's state: so the registry itself says so, whichever client asked (the page, the
learner's own code, curl). With another registry (SCHEMA_REGISTRY_URL), only the app's own
requests are seen: kafkalab.labs.services.contracts announces those.
"""

from __future__ import annotations

import logging
import re
import time

from kafkalab.runner.protocol import RegistryChanged, runner_send_sync

log = logging.getLogger(__name__)

LAB_SUBJECT = re.compile(r"lab-([1-9][0-9]{0,18})\.")


def lab_of_subject(subject: str | None) -> int | None:
    match = LAB_SUBJECT.match(subject or "")
    return int(match.group(1)) if match else None


def announce(subject: str | None, action: str, **fields: object) -> None:
    """Best effort: the registry's answer never waits on, or fails with, the runner."""
    lab_id = lab_of_subject(subject)
    if lab_id is None:
        return
    try:
        runner_send_sync(RegistryChanged(lab_id=lab_id, subject=subject, action=action, at=time.time(), **fields))
    except Exception:  # a full channel layer, Redis away: the lesson misses one event, nothing else
        log.warning("could not tell lab %s's runner that the registry %s a schema", lab_id, action, exc_info=True)
