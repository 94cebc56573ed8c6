"""The cluster page follows the real brokers live."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from django.conf import settings
from playwright.sync_api import expect

from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness.server import Server

pytestmark = pytest.mark.e2e

# A cluster of this test's own: killing a broker of the suite's shared one would disturb the
# tests another worker runs meanwhile.
OWN_CLUSTER_PORTS = 62592


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(
        tmp_path_factory.mktemp("cluster-page"), port_base=OWN_CLUSTER_PORTS, libs_dir=settings.KAFKA_LIBS_DIR
    )
    try:
        cluster.up(3)
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="module")
def own_server_url(own_cluster: LocalCluster, tmp_path_factory) -> Iterator[str]:
    with Server(tmp_path_factory.mktemp("cluster-page-server"), own_cluster, CLUSTER_WATCH_INTERVAL="0.5") as server:
        yield server.url


def test_cluster_page_shows_three_brokers_and_a_killed_one_goes_down(own_cluster, own_server_url, page):
    # "/" leads a learner to their lab; the brokers have their own page.
    page.goto(own_server_url + "/cluster/")
    brokers = page.locator("[data-broker-id]")
    expect(brokers).to_have_count(3)
    for node_id in (1, 2, 3):
        expect(page.locator(f'[data-broker-id="{node_id}"]')).to_have_attribute("data-state", "up")

    victim = next(b for b in own_cluster.status().brokers if b.node_id == 3)
    os.kill(victim.pid, signal.SIGKILL)
    try:
        expect(page.locator('[data-broker-id="3"]')).to_have_attribute("data-state", "down", timeout=10_000)
        expect(page.locator('[data-broker-id="1"]')).to_have_attribute("data-state", "up")
    finally:
        own_cluster.up(3)
    expect(page.locator('[data-broker-id="3"]')).to_have_attribute("data-state", "up", timeout=30_000)
