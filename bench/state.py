"""Section `state`: state.json and the lab runner under 30 watched labs.

A 3-broker cluster (ports 63692+) and a daphne of its own (embedded runner). Thirty learners each
start a lab and two consumers; each lab's page stays open (a websocket, so the lab is watched) and
the bench writes 5 events/s into every lab's topic. Then state.json is asked of every lab in
turn, and the daphne process (web + embedded runner) is measured while all that runs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
from confluent_kafka import Producer

from bench.report import Figure, percentile, progress
from bench.server import lab_stack
from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness import server as harness
from tests.harness.http_browser import Browser
from tests.integration.consumer_groups.support import Lab, LabSocket, consumer_form

PORT_BASE = 63692
BROKERS = 3
LABS = 30
CONSUMERS_PER_LAB = 2
EVENTS_PER_SECOND = 5  # per lab
WARM_SECONDS = 20.0  # consumers join and the observers settle before measuring
ROUNDS = 3  # state.json requests per lab
CPU_SECONDS = 10.0
SERVICE_MODULE = "kafkalab.kafka.notification_service"
PROBE_MODULE = "kafkalab.kafka.group_probe"
MIB = 2**20


class Server(harness.Server):
    """The bench's daphne: room for 30 labs from one address."""

    def __init__(self, root: Path, cluster: LocalCluster) -> None:
        super().__init__(root, cluster, LAB_MAX_LABS=str(LABS + 10), LAB_MAX_LABS_PER_ADDRESS=str(LABS + 10))


def run() -> list[Figure]:
    with lab_stack("state", port_base=PORT_BASE, brokers=BROKERS, server_class=Server) as (cluster, server):
        return measure(server, cluster.bootstrap_servers(BROKERS))


def measure(server: Server, bootstrap: str) -> list[Figure]:
    progress(f"{LABS} labs with {CONSUMERS_PER_LAB} consumers each")
    labs = [Lab.open(Browser(server.url)) for _ in range(LABS)]
    sockets = [LabSocket(server.url, lab) for lab in labs]
    stop = threading.Event()
    writer = threading.Thread(target=write_events, args=(bootstrap, [lab.topic for lab in labs], stop), daemon=True)
    try:
        for lab in labs:
            for _ in range(CONSUMERS_PER_LAB):
                lab.browser.post(lab.url("consumers/"), consumer_form())
        writer.start()
        progress(f"writing {EVENTS_PER_SECOND} events/s into each lab; settling {WARM_SECONDS:.0f} s")
        time.sleep(WARM_SECONDS)
        running = sum(1 for lab in labs for consumer in lab.state()["consumers"] if consumer["status"] == "running")
        progress("state.json, lab by lab")
        timings = state_json_timings(labs)
        cpu, rss = daphne_load(server)
        children = server.ps.children(recursive=True)
        consumers = [p for p in children if SERVICE_MODULE in " ".join(p.cmdline())]
        probes = [p for p in children if PROBE_MODULE in " ".join(p.cmdline())]
        return [
            Figure("labs watched (a page open each)", LABS, "", digits=0),
            Figure("consumers running", running, "", f"of {LABS * CONSUMERS_PER_LAB}", digits=0),
            Figure("state.json p50", percentile(timings, 50), "ms", f"{len(timings)} requests, one at a time"),
            Figure("state.json p99", percentile(timings, 99), "ms"),
            Figure("state.json max", max(timings), "ms"),
            Figure(
                "daphne (web + runner) CPU",
                cpu,
                "% of a core",
                f"over {CPU_SECONDS:.0f} s, {LABS * EVENTS_PER_SECOND} events/s in all",
            ),
            Figure("daphne (web + runner) RSS", rss / MIB, "MiB"),
            Figure(
                "consumer processes RSS", sum(rss_of(p) for p in consumers) / MIB, "MiB", f"{len(consumers)} processes"
            ),
            Figure(
                "group probe processes RSS", sum(rss_of(p) for p in probes) / MIB, "MiB", f"{len(probes)} processes"
            ),
        ]
    finally:
        stop.set()
        for socket in sockets:
            socket.close()
        for lab in labs:
            lab.reset()


def write_events(bootstrap: str, topics: list[str], stop: threading.Event) -> None:
    """EVENTS_PER_SECOND into every topic, spread over each second."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    interval = 1.0 / (EVENTS_PER_SECOND * len(topics))
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        topic = topics[sent % len(topics)]
        producer.produce(topic, key=f"bench-{sent}".encode(), value=b'{"orderId": "bench"}')
        producer.poll(0)
        sent += 1
        delay = started + sent * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    producer.flush(10)


def state_json_timings(labs: list[Lab]) -> list[float]:
    timings = []
    for _ in range(ROUNDS):
        for lab in labs:
            began = time.perf_counter()
            response = lab.browser.get(lab.url("state.json"))
            timings.append((time.perf_counter() - began) * 1000)
            if response.status != 200:
                raise RuntimeError(f"state.json answered {response.status}: {response.text[:200]}")
    return timings


def daphne_load(server: Server) -> tuple[float, int]:
    process = server.ps
    process.cpu_percent(None)
    time.sleep(CPU_SECONDS)
    return process.cpu_percent(None), process.memory_info().rss


def rss_of(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0
