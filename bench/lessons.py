"""Section `lessons`: what checking lesson steps costs the runner.

Each watched lab's current step is checked on every model its observer builds for the panels
(a few a second). This times the checks, on models the size a busy lab's are (4 lanes of 40
records, 4 consumers, a full timeline and outbox), for 30 labs: the one check each lab's current
step runs, and every registered check (the worst any step could be), per model update.
"""

from __future__ import annotations

import os
import time

import django

from bench.report import Figure

LABS = 30
ROUNDS = 200


def busy_model(lab: int) -> dict:
    lanes = [
        {
            "partition": p,
            "log_end": 1000 + p,
            "log_start": 0,
            "records": [
                {
                    "partition": p,
                    "offset": 960 + p + i,
                    "key": f"order-{lab}-{i}",
                    "event_type": "OrderCreated",
                    "timestamp_ms": i,
                }
                for i in range(40)
            ],
        }
        for p in range(4)
    ]
    consumers = [
        {
            "name": f"c{n}",
            "status": "running",
            "live": True,
            "config": {"session_timeout_ms": 6000, "commit_mode": "auto"},
        }
        for n in range(1, 5)
    ]
    changes = [{"consumer": f"c{n}", "revoked": [n - 1], "assigned": [n - 1], "lost": []} for n in range(1, 5)]
    rebalance = {
        "trigger": "c4 joined the group",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:00:01+00:00",
        "duration_ms": 1000,
        "changes": changes,
    }
    recent = [
        {"consumer": "c1", "partition": 0, "offset": i, "order_id": f"o{i}", "duplicate": i % 7 == 0} for i in range(50)
    ]
    return {
        "lanes": lanes,
        "groups": [
            {
                "state": "STABLE",
                "members": [{"consumer": f"c{n}", "partitions": [n - 1]} for n in range(1, 5)],
                "assignor": "range",
                "protocol": "CLASSIC",
            }
        ],
        "consumers": consumers,
        "rebalances": [rebalance] * 12,
        "outbox": {
            "sent": 500,
            "duplicates": 7,
            "missed": 2,
            "recent": recent,
            "missed_records": [{"partition": 0, "offset": 3, "key": "k"}],
        },
    }


def run() -> list[Figure]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kafkalab.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    django.setup()
    from lessons import checks

    models = [busy_model(lab) for lab in range(LABS)]
    armed = [
        checks.arm({**m, "lanes": [{**lane, "log_end": lane["log_end"] - 5} for lane in m["lanes"]]}, now=0)
        for m in models
    ]
    names = sorted(checks.REGISTRY)

    def timed(name: str) -> float:
        """ms of CPU to run check `name` once on every lab's model."""
        spec = checks.REGISTRY[name]
        started = time.process_time()
        for _ in range(ROUNDS):
            for model, baseline in zip(models, armed, strict=True):
                checks.evaluate(name, spec.params, model=model, armed=baseline, now=1)
        return (time.process_time() - started) / ROUNDS * 1000

    started = time.process_time()
    for _ in range(ROUNDS):
        for model in models:
            checks.arm(model, now=0)
    arm_ms = (time.process_time() - started) / ROUNDS * 1000
    per_check = {name: timed(name) for name in names}
    slowest = max(per_check, key=per_check.get)
    return [
        Figure(
            f"{LABS} labs: average check",
            sum(per_check.values()) / len(names),
            "ms CPU",
            "per model update of every lab (a step runs one check)",
            digits=2,
        ),
        Figure(f"{LABS} labs: slowest check", per_check[slowest], "ms CPU", f"{slowest}, per model update", digits=2),
        Figure(
            f"{LABS} labs: all {len(names)} checks", sum(per_check.values()), "ms CPU", "per model update", digits=2
        ),
        Figure(f"{LABS} labs: arming a step", arm_ms, "ms CPU", "when a step becomes current in all 30", digits=2),
    ]
