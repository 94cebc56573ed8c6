"""A local Apache Kafka cluster of 1–N KRaft nodes, run from the jars Maven fetched.

Each node runs in combined mode (broker + controller) on loopback. Node *i* (1-based) listens
for clients on ``port_base + 2(i-1)`` and for the controller quorum on the port after it.
Everything the cluster writes lives under ``root/cluster``: a ``cluster.json`` describing how
the storage was formatted, and per node its properties, data, logs and pid file.

This module knows nothing about Django so that tests and the management command can point it
at any folder and ports.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from kafkalab.kafka.errors import KafkaSetupError

MIN_JAVA_MAJOR = 17
REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_ASSETS = REPO_ROOT / "broker"

INSTALL_HINT = (
    "Alternatives: run the classroom stack with `docker compose up` (see README), "
    "or point KAFKA_BOOTSTRAP_SERVERS at a Kafka cluster you already have."
)


# --- Prerequisites --------------------------------------------------------------------------


def java_executable() -> str:
    """Path of a Java 17+ runtime, or a KafkaSetupError that says what to install."""
    java_home = os.environ.get("JAVA_HOME", "").strip()
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        raise KafkaSetupError(
            "Java 17 or newer is needed to run the local Kafka brokers, and `java` was not "
            "found on PATH. Install a JDK, e.g. `sudo apt-get install openjdk-17-jdk-headless`. " + INSTALL_HINT
        )
    major = _java_major_version(candidate)
    if major < MIN_JAVA_MAJOR:
        raise KafkaSetupError(
            f"Kafka 4 needs Java {MIN_JAVA_MAJOR} or newer; {candidate} is Java {major}. "
            "Install a newer JDK, e.g. `sudo apt-get install openjdk-17-jdk-headless`. " + INSTALL_HINT
        )
    return candidate


def _java_major_version(java: str) -> int:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        raise KafkaSetupError(f"Could not tell which Java version {java} is: {result.stderr.strip()}")
    major = int(match.group(1))
    # Java 8 and older report themselves as "1.x".
    return int(match.group(2) or 0) if major == 1 else major


def maven_executable() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaSetupError(
            "Apache Maven is needed once, to fetch the Kafka broker jars, and `mvn` was not "
            "found on PATH. Install it, e.g. `sudo apt-get install maven`. " + INSTALL_HINT
        )
    return mvn


def fetch_jars(libs_dir: Path, *, pom: Path = BROKER_ASSETS / "pom.xml") -> bool:
    """Copy the broker's runtime classpath into libs_dir. Returns False when already there."""
    stamp = libs_dir / ".pom-sha256"
    wanted = _sha256(pom)
    if stamp.exists() and stamp.read_text().strip() == wanted and kafka_version(libs_dir):
        return False
    java_executable()
    mvn = maven_executable()
    staging = libs_dir.with_name(libs_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaSetupError("Maven could not fetch the Kafka jars:\n" + (result.stdout + result.stderr)[-2000:])
    # Swap in the complete set only, so an interrupted fetch never leaves a half classpath.
    shutil.rmtree(libs_dir, ignore_errors=True)
    staging.rename(libs_dir)
    stamp.write_text(wanted)
    return True


def kafka_version(libs_dir: Path) -> str | None:
    """The broker version, read from the jar that runs it (e.g. kafka_2.13-4.1.1.jar)."""
    for jar in sorted(libs_dir.glob("kafka_2.13-*.jar")):
        match = re.fullmatch(r"kafka_2\.13-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- Class-data sharing ---------------------------------------------------------------------
# Brokers starting side by side on a two-core laptop spend most of their CPU loading and
# verifying the same ~7,000 classes. An AppCDS archive of those classes roughly halves what a
# start costs. The first start without one has its first node list the classes it loads; once
# the cluster is up, a detached process at the lowest priority turns the list into the archive.


def class_archive(java: str, libs_dir: Path) -> Path:
    """The archive for this JDK and these jars. It sits beside the jars, so a new fetch drops
    it; a JDK upgrade gets an archive of its own (a JVM ignores one another build made)."""
    real = Path(java).resolve()
    build = hashlib.sha256(f"{real}:{real.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    return libs_dir / f"broker-classes-{build}.jsa"


def class_sharing_options(archive: Path, *, class_list: Path | None) -> list[str]:
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}"]
    if class_list is not None:
        # A JVM built without CDS would refuse the option and the broker with it.
        return ["-XX:+IgnoreUnrecognizedVMOptions", f"-XX:DumpLoadedClassList={class_list}"]
    return []


def class_list_to_write(archive: Path) -> Path | None:
    """Where a starting node should list its classes, or None when the archive exists or
    another process is making it right now."""
    if archive.exists():
        return None
    try:
        with open(archive.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by the process making it, or the jars are on a read-only mount
        return None
    return archive.with_suffix(f".{os.getpid()}.classes")


def make_class_archive_in_background(java: str, libs_dir: Path, class_list: Path, archive: Path) -> None:
    """Start make_class_archive in a process that outlives this one and is no child of it."""
    arguments = [java, str(libs_dir), str(class_list), str(archive)]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "kafkalab.kafka.local_cluster", "make-class-archive", *arguments],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    # It forks the real work off and exits at once; reap it without making anyone wait.
    threading.Thread(target=launcher.wait, name="class-archive-launcher", daemon=True).start()


def make_class_archive(java: str, libs_dir: Path, class_list: Path, archive: Path) -> None:
    """Dump the classes a broker listed into the archive. Holds the lock all the while, and
    moves the archive into place only once complete, so a JVM never maps half of one."""
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    try:
        with open(archive.with_suffix(".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another process is making it
            if archive.exists():
                return
            command = [
                java, "-Xshare:dump", "-XX:+UseG1GC", f"-XX:SharedClassListFile={class_list}",
                f"-XX:SharedArchiveFile={partial}", "-cp", str(libs_dir / "*"),
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, timeout=600)
            if result.returncode == 0 and partial.exists():
                os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
        class_list.unlink(missing_ok=True)


# --- Cluster layout -------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def properties_file(self) -> Path:
        return self.directory / "node.properties"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "logs" / "server.log"

    @property
    def console_file(self) -> Path:
        return self.directory / "logs" / "console.log"


@dataclass(frozen=True)
class BrokerStatus:
    node_id: int
    pid: int | None
    port: int
    controller_port: int
    alive: bool


@dataclass(frozen=True)
class ClusterStatus:
    bootstrap_servers: str
    kafka_version: str | None
    brokers: list[BrokerStatus]

    @property
    def running(self) -> bool:
        return any(broker.alive for broker in self.brokers)

    def as_dict(self) -> dict:
        return {
            "mode": "local",
            "bootstrap_servers": self.bootstrap_servers,
            "kafka_version": self.kafka_version,
            "brokers": [asdict(broker) for broker in self.brokers],
        }


@dataclass(frozen=True)
class UpResult:
    bootstrap_servers: str
    started: list[int]


def render_node_properties(node: Node, nodes: list[Node]) -> str:
    """The server.properties of one combined-mode node, with lab-fast settings."""
    count = len(nodes)
    replication = min(3, count)
    min_isr = min(2, count)
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": node.directory / "data",
        # Lab topics are created on purpose, never by a typo in a producer.
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "default.replication.factor": replication,
        "min.insync.replicas": 1,
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": 10,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Rebalances in a lab should be seen at once, not after the production defaults.
        "group.initial.rebalance.delay.ms": 0,
        "group.min.session.timeout.ms": 1000,
        "group.consumer.min.session.timeout.ms": 1000,
        "group.consumer.session.timeout.ms": 10000,
        "group.consumer.min.heartbeat.interval.ms": 500,
        "group.consumer.heartbeat.interval.ms": 1000,
        # The broker aborts a transaction past its transaction.timeout.ms only when it next looks
        # (every 10 s by default): every second, so the page's countdown is true within a second.
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
        # A killed broker is fenced (and loses its leaderships and ISR places) within seconds,
        # so acks=all producers stall briefly rather than past their delivery timeout.
        "broker.heartbeat.interval.ms": 1000,
        "broker.session.timeout.ms": 4000,
        "replica.lag.time.max.ms": 10000,
        # Small heaps: the default 128 MiB dedupe buffer alone would not fit.
        "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 4,
    }
    lines = [f"# Written by kafkalab for node {node.node_id}; regenerated on format."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    # Kafka's own format: a random UUID, base64url without padding; never starting with "-".
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


# --- The cluster ----------------------------------------------------------------------------


class LocalCluster:
    def __init__(self, root: Path, *, port_base: int = 9092, heap_mb: int = 256, libs_dir: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.port_base = port_base
        self.heap_mb = heap_mb
        self.libs_dir = Path(libs_dir).resolve() if libs_dir else self.root / "libs"
        self.cluster_dir = self.root / "cluster"
        self.state_file = self.cluster_dir / "cluster.json"

    # Layout ---------------------------------------------------------------------------------

    def nodes(self, count: int) -> list[Node]:
        return [
            Node(
                node_id=i,
                port=self.port_base + 2 * (i - 1),
                controller_port=self.port_base + 2 * (i - 1) + 1,
                directory=self.cluster_dir / f"node-{i}",
            )
            for i in range(1, count + 1)
        ]

    def formatted_broker_count(self) -> int | None:
        state = self._read_state()
        if state and state.get("port_base") == self.port_base:
            return int(state["brokers"])
        return None

    def bootstrap_servers(self, count: int | None = None) -> str:
        count = count or self.formatted_broker_count() or 1
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes(count))

    # Commands -------------------------------------------------------------------------------

    def up(self, brokers: int, *, timeout: float = 120.0) -> UpResult:
        """Start the nodes that are not running; wait until Kafka sees all of them."""
        if brokers < 1:
            raise KafkaSetupError("A cluster needs at least one broker.")
        java = java_executable()
        if not kafka_version(self.libs_dir):
            raise KafkaSetupError(
                f"The Kafka jars are not in {self.libs_dir}. Run `make setup` "
                "(or `python manage.py kafka fetch`) first."
            )
        running = self._running_nodes()
        formatted = self.formatted_broker_count()
        if running and formatted != brokers:
            raise KafkaSetupError(
                f"A local cluster of {formatted} broker(s) is already running. "
                "Run `python manage.py kafka down` first to start one of a different size."
            )
        nodes = self.nodes(brokers)
        if formatted != brokers:
            self._format(java, nodes)
        to_start = [node for node in nodes if node.node_id not in running]
        for node in to_start:
            # Settings follow the code on every start; only the storage is formatted once.
            node.properties_file.write_text(render_node_properties(node, nodes))
        self._check_ports_free(to_start)
        bootstrap = self.bootstrap_servers(brokers)
        archive = class_archive(java, self.libs_dir)
        class_list = class_list_to_write(archive) if to_start else None
        try:
            processes = self._spawn_all(java, to_start, archive=archive, class_list=class_list)
            self._wait_until_ready(bootstrap, nodes, processes, timeout=timeout)
        except (KafkaSetupError, KeyboardInterrupt):
            # Ctrl-C (or serve's SIGTERM) while waiting must not orphan the JVMs just spawned.
            self._stop_nodes(to_start, grace=5.0)
            if class_list is not None:
                class_list.unlink(missing_ok=True)
            raise
        if class_list is not None and class_list.exists():
            make_class_archive_in_background(java, self.libs_dir, class_list, archive)
        return UpResult(bootstrap_servers=bootstrap, started=[n.node_id for n in to_start])

    def down(self, *, grace: float = 20.0) -> list[int]:
        """Stop every node this cluster started: SIGTERM, then SIGKILL after `grace` seconds."""
        count = self.formatted_broker_count() or 0
        nodes = [node for node in self.nodes(count) if self._live_pid(node)]
        return self._stop_nodes(nodes, grace=grace)

    def wipe(self) -> bool:
        """Delete the cluster's storage (every topic and record), so that the next `up` formats
        a fresh one. Only a stopped cluster is wiped: True when it was, False when a node runs."""
        if self._running_nodes():
            return False
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        return True

    def status(self) -> ClusterStatus:
        count = self.formatted_broker_count() or 0
        brokers = []
        for node in self.nodes(count):
            pid = self._live_pid(node)
            brokers.append(
                BrokerStatus(
                    node_id=node.node_id,
                    pid=pid,
                    port=node.port,
                    controller_port=node.controller_port,
                    alive=pid is not None,
                )
            )
        return ClusterStatus(
            bootstrap_servers=self.bootstrap_servers(count) if count else "",
            kafka_version=kafka_version(self.libs_dir),
            brokers=brokers,
        )

    # Formatting -----------------------------------------------------------------------------

    def _format(self, java: str, nodes: list[Node]) -> None:
        """Write fresh properties and format every node's storage with one new cluster id."""
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        cluster_id = new_cluster_id()
        for node in nodes:
            (node.directory / "logs").mkdir(parents=True, exist_ok=True)
            node.properties_file.write_text(render_node_properties(node, nodes))
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            results = list(pool.map(lambda n: self._format_node(java, n, cluster_id), nodes))
        failures = [message for message in results if message]
        if failures:
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
            raise KafkaSetupError("Formatting the Kafka storage failed:\n" + "\n".join(failures))
        self._write_state({"cluster_id": cluster_id, "brokers": len(nodes), "port_base": self.port_base})

    def _format_node(self, java: str, node: Node, cluster_id: str) -> str | None:
        command = [
            java, "-Xmx128m", *self._log_options(node), "-cp", str(self.libs_dir / "*"),
            "kafka.tools.StorageTool", "format", "-t", cluster_id,
            "-c", str(node.properties_file), "--ignore-formatted",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            return f"node {node.node_id}: {(result.stdout + result.stderr).strip()[-1500:]}"
        return None

    # Processes ------------------------------------------------------------------------------

    def _spawn_all(
        self, java: str, nodes: list[Node], *, archive: Path, class_list: Path | None
    ) -> dict[int, subprocess.Popen]:
        """Every node at once, since each waits for the others' votes; the first one lists the
        classes it loads when there is a class list to write."""
        return {
            node.node_id: self._spawn(java, node, class_sharing_options(archive, class_list=None if i else class_list))
            for i, node in enumerate(nodes)
        }

    def _spawn(self, java: str, node: Node, extra_options: list[str]) -> subprocess.Popen:
        command = [
            java, f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
            # C1 only: the C2 compiler roughly doubles the CPU three JVMs burn while starting
            # side by side on a laptop, and a lab's traffic never needs C2's peak speed.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true", *self._log_options(node), *extra_options,
            "-cp", str(self.libs_dir / "*"), "kafka.Kafka", str(node.properties_file),
        ]  # fmt: skip
        node.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(node.console_file, "ab") as console:
            # A session of its own: Ctrl-C in the terminal that ran `kafka up` (or `make run`)
            # reaches our code, which stops the brokers in order, not the JVMs directly.
            process = subprocess.Popen(
                command, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=node.directory,
            )  # fmt: skip
        node.pid_file.write_text(str(process.pid))
        return process

    def _log_options(self, node: Node) -> list[str]:
        return [
            f"-Dlog4j2.configurationFile={BROKER_ASSETS / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.directory / 'logs'}",
        ]

    def _live_pid(self, node: Node) -> int | None:
        """The pid in the node's pid file if that process is still our broker; else clean up."""
        try:
            pid = int(node.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            pid = None
        if pid is not None and _is_our_broker(pid, node):
            return pid
        # Stale or missing: the broker died, the pid was reused by another program, or the
        # file was lost while the broker ran on. Look for the broker itself before giving up.
        pid = _find_broker(node)
        if pid is None:
            node.pid_file.unlink(missing_ok=True)
        else:
            node.pid_file.write_text(str(pid))
        return pid

    def _running_nodes(self) -> dict[int, int]:
        count = self.formatted_broker_count() or 0
        return {node.node_id: pid for node in self.nodes(count) if (pid := self._live_pid(node))}

    def _stop_nodes(self, nodes: Iterable[Node], *, grace: float) -> list[int]:
        targets = {node: pid for node in nodes if (pid := self._live_pid(node))}
        for pid in targets.values():
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(pid) for pid in targets.values()):
            time.sleep(0.1)
        for pid in targets.values():
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        for node, pid in targets.items():
            _wait_gone(pid, timeout=10.0)
            node.pid_file.unlink(missing_ok=True)
        return sorted(node.node_id for node in targets)

    def _check_ports_free(self, nodes: list[Node]) -> None:
        for node in nodes:
            for port in (node.port, node.controller_port):
                owner = _port_owner(port)
                if owner is not None:
                    raise KafkaSetupError(
                        f"Port {port} on 127.0.0.1 is already in use{owner}, so Kafka node "
                        f"{node.node_id} cannot listen on it. Stop that program, or move the "
                        "local cluster to other ports with KAFKA_LOCAL_PORT_BASE "
                        f"(now {self.port_base}; each node takes two ports)."
                    )

    def _wait_until_ready(
        self,
        bootstrap: str,
        nodes: list[Node],
        processes: dict[int, subprocess.Popen],
        *,
        timeout: float,
    ) -> None:
        from kafkalab.kafka.admin import broker_ids, broker_listening

        deadline = time.monotonic() + timeout
        wanted = {node.node_id for node in nodes}
        seen: set[int] = set()
        while time.monotonic() < deadline:
            for node_id, process in processes.items():
                if process.poll() is not None:
                    node = next(n for n in nodes if n.node_id == node_id)
                    raise KafkaSetupError(
                        f"Kafka node {node_id} exited with code {process.returncode} while "
                        f"starting. Last lines of {node.log_file}:\n{_tail(node)}"
                    )
            for node in nodes:
                if node.node_id not in processes and not self._live_pid(node):
                    raise KafkaSetupError(
                        f"Kafka node {node.node_id} stopped while the cluster was starting "
                        "(was it shutting down?). Run `python manage.py kafka up` again."
                    )
            seen = broker_ids(bootstrap, timeout=2.0)
            # A killed broker stays registered until the controller fences it, so a node that
            # is restarting counts only once its own client port accepts connections too.
            if wanted <= seen and all(broker_listening("127.0.0.1", node.port) for node in nodes):
                return
            time.sleep(0.25)
        raise KafkaSetupError(
            f"The cluster did not come up within {timeout:.0f}s: Kafka sees brokers "
            f"{sorted(seen) or 'none'} of {sorted(wanted)}. Logs are in {self.cluster_dir}."
        )

    # State file -----------------------------------------------------------------------------

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _write_state(self, state: dict) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")


# --- Process helpers ------------------------------------------------------------------------


def _is_our_broker(pid: int, node: Node) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "kafka.Kafka" in cmdline and str(node.properties_file) in cmdline


def _find_broker(node: Node) -> int | None:
    for process in psutil.process_iter(["pid", "name"]):
        if process.info["name"] == "java" and _is_our_broker(process.info["pid"], node):
            return process.info["pid"]
    return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, *, timeout: float) -> None:
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired, ChildProcessError):
        psutil.Process(pid).wait(timeout=timeout)


def _port_owner(port: int) -> str | None:
    """None when 127.0.0.1:port can be bound; else a phrase naming who holds it, if we can tell."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Java sets SO_REUSEADDR too, so a port in TIME_WAIT is free for Kafka as well.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return None
        except OSError:
            pass
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" by {psutil.Process(conn.pid).name()} (pid {conn.pid})"
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        pass
    return " by another program"


def _tail(node: Node, lines: int = 20) -> str:
    for path in (node.log_file, node.console_file):
        if path.exists() and path.stat().st_size:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log output)"


def _main(argv: list[str]) -> None:
    """`python -m kafkalab.kafka.local_cluster make-class-archive JAVA LIBS CLASS_LIST ARCHIVE`."""
    if argv[:1] != ["make-class-archive"] or len(argv) != 5:
        sys.exit(_main.__doc__)
    # Fork, and let the launcher exit: the work goes on in a process that is nobody's child,
    # so `serve` and the tests never find it among their own, and at the lowest priority.
    if os.fork() > 0:
        os._exit(0)
    os.nice(19)
    java, libs_dir, class_list, archive = argv[1:]
    make_class_archive(java, Path(libs_dir), Path(class_list), Path(archive))


if __name__ == "__main__":
    _main(sys.argv[1:])
