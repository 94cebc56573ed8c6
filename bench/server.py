"""What the browser sections share: a cluster of their own and kafkalab under daphne on it, by
the same launcher as the tests (tests/harness)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.cluster import REPO_LIBS, stop_and_verify
from bench.report import progress
from kafkalab.kafka.local_cluster import LocalCluster, kafka_version
from tests.harness.server import Server


@contextmanager
def lab_stack(
    name: str, *, port_base: int, brokers: int = 3, server_class: type[Server] = Server
) -> Iterator[tuple[LocalCluster, Server]]:
    """A cluster and a daphne of the section's own, in a temp dir; both stopped afterwards."""
    if not kafka_version(REPO_LIBS):
        raise RuntimeError(f"No Kafka jars in {REPO_LIBS}: run `make setup` first.")
    with tempfile.TemporaryDirectory(prefix=f"kafkalab-bench-{name}-") as tmp:
        root = Path(tmp)
        cluster = LocalCluster(root / "kafka", port_base=port_base, libs_dir=REPO_LIBS)
        server = None
        try:
            progress(f"kafka up --brokers {brokers} on ports {port_base}+")
            cluster.up(brokers)
            progress("migrate, then daphne on a free port")
            server = server_class(root / "daphne", cluster).start()
            yield cluster, server
        finally:
            if server is not None:
                server.stop()
            stop_and_verify(cluster)
