"""Section `cluster`: what `make setup`, `kafka up` and `make run` cost, cold and warm, and what
an idle broker holds on to. Runs in temp dirs, on ports 63092+, clear of the dev and test clusters."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.report import Figure, progress
from kafkalab.kafka.local_cluster import LocalCluster, kafka_version

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_LIBS = REPO_ROOT / ".kafka" / "libs"
# The dev cluster uses 9092-9097 and the test cluster 29092-29097; never touch either.
PORT_BASE = 63092
# `make run`'s own cluster, apart from the one above (both above the ephemeral port range).
MAKE_RUN_PORT_BASE = 63192
BROKERS = 3
SETTLE_SECONDS = 5.0
CPU_SAMPLE_SECONDS = 5.0
MIB = 2**20


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="kafkalab-bench-") as tmp:
        scratch = Path(tmp)
        return [
            *setup_figures(scratch),
            *cluster_figures(scratch / "cluster-root"),
            *make_run_figures(scratch / "make-run"),
        ]


# --- make setup -----------------------------------------------------------------------------


def setup_figures(scratch: Path) -> list[Figure]:
    checkout, pip_cache, maven_repo = scratch / "repo", scratch / "pip-cache", scratch / "m2"
    copy_working_tree(REPO_ROOT, checkout)
    env = cold_env(pip_cache=pip_cache, maven_repo=maven_repo)
    progress("make setup in a fresh copy, empty pip and Maven caches")
    cold = timed(lambda: make_setup(checkout, env))
    progress("make setup again (warm)")
    warm = timed(lambda: make_setup(checkout, env))

    libs = checkout / ".kafka" / "libs"
    jars = sorted(libs.glob("*.jar"))
    jars_size = sum(jar.stat().st_size for jar in jars)
    maven_note = "local repo: jars, plugins, poms"
    if not any(maven_repo.glob("*")):
        # Maven ignored -Dmaven.repo.local, so the cold figure reused ~/.m2.
        maven_note = "NOT COLD: Maven ignored -Dmaven.repo.local and used its default repository"
    return [
        Figure("setup (cold, empty caches)", cold, "s", "fresh copy: venv, pip install, Maven fetch"),
        Figure("setup (warm)", warm, "s", "same copy again: nothing to install or fetch"),
        Figure("broker jars fetched", len(jars), "jars", digits=0),
        Figure("broker jars size", jars_size / MIB, "MiB", f"Kafka {kafka_version(libs)}"),
        Figure("downloaded by Maven", tree_size(maven_repo) / MIB, "MiB", maven_note),
    ]


def copy_working_tree(repo: Path, destination: Path) -> None:
    """The working tree as the next commit would hold it: tracked files with their uncommitted
    edits, plus new files not ignored (a tracked edit may already import a file not yet added)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listing.stdout.decode().split("\0")):
        source = repo / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def cold_env(*, pip_cache: Path, maven_repo: Path) -> dict[str, str]:
    """The caller's environment minus what would point the copy back at this repo or its caches."""
    dropped = {"VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    env = {key: value for key, value in os.environ.items() if key not in dropped and not key.startswith("KAFKA_")}
    # An activated venv on PATH would make the copy's `python3 -m venv` come from this repo's venv.
    venv_bins = {str(REPO_ROOT / ".venv" / "bin"), os.path.join(os.environ.get("VIRTUAL_ENV", "/nonexistent"), "bin")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p not in venv_bins)
    env["PIP_CACHE_DIR"] = str(pip_cache)
    # fetch_jars passes its environment on to mvn, whose launcher hands MAVEN_OPTS to the JVM.
    env["MAVEN_OPTS"] = f"{os.environ.get('MAVEN_OPTS', '')} -Dmaven.repo.local={maven_repo}".strip()
    return env


def make_setup(checkout: Path, env: dict[str, str]) -> None:
    result = subprocess.run(["make", "setup"], cwd=checkout, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`make setup` failed in {checkout}:\n{(result.stdout + result.stderr)[-3000:]}")


def tree_size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


# --- kafka up / down ------------------------------------------------------------------------


def cluster_figures(root: Path) -> list[Figure]:
    if not kafka_version(REPO_LIBS):
        raise RuntimeError(f"No Kafka jars in {REPO_LIBS}: run `make setup` first.")
    cluster = LocalCluster(root, port_base=PORT_BASE, libs_dir=REPO_LIBS)
    try:
        progress(f"kafka up --brokers {BROKERS} on fresh storage, ports {PORT_BASE}+")
        cold_up = timed(lambda: cluster.up(BROKERS))
        cluster_id = read_cluster_id(cluster)
        progress("kafka down")
        cold_down = timed(cluster.down)
        progress(f"kafka up --brokers {BROKERS} on the formatted storage")
        warm_up = timed(lambda: cluster.up(BROKERS))
        warm_note = "storage kept" if read_cluster_id(cluster) == cluster_id else "storage was REFORMATTED"
        figures = [
            Figure(f"kafka up --brokers {BROKERS} (cold)", cold_up, "s", "formats storage, then starts"),
            Figure(f"kafka down ({BROKERS} brokers)", cold_down, "s", "SIGTERM, clean shutdown"),
            Figure(f"kafka up --brokers {BROKERS} (warm)", warm_up, "s", warm_note),
            *idle_broker_figures(cluster),
        ]
        progress("kafka down after idling")
        figures.append(Figure("kafka down (after idle)", timed(cluster.down), "s"))
        return figures
    finally:
        stop_and_verify(cluster)


def idle_broker_figures(cluster: LocalCluster) -> list[Figure]:
    progress(f"letting the brokers settle {SETTLE_SECONDS:.0f} s, then sampling CPU for {CPU_SAMPLE_SECONDS:.0f} s")
    time.sleep(SETTLE_SECONDS)
    brokers = {broker.node_id: psutil.Process(broker.pid) for broker in cluster.status().brokers if broker.pid}
    if len(brokers) != BROKERS:
        raise RuntimeError(f"Expected {BROKERS} live brokers, found node(s) {sorted(brokers)}.")
    rss = {node_id: process.memory_info().rss / MIB for node_id, process in brokers.items()}
    for process in brokers.values():
        process.cpu_percent(None)  # the first call only starts the interval
    time.sleep(CPU_SAMPLE_SECONDS)
    cpu = {node_id: process.cpu_percent(None) for node_id, process in brokers.items()}
    return [
        *(Figure(f"broker {i} RSS", rss[i], "MiB", f"heap -Xmx{cluster.heap_mb}m", digits=0) for i in sorted(rss)),
        *(
            Figure(f"broker {i} CPU, idle", cpu[i], "%", f"of one core, over {CPU_SAMPLE_SECONDS:.0f} s")
            for i in sorted(cpu)
        ),
    ]


# --- make run -------------------------------------------------------------------------------


def make_run_figures(root: Path) -> list[Figure]:
    """`make run` in this checkout, as a developer runs it, until GET /cluster/ answers 200.

    The first run formats the cluster's storage and creates the database; the second is the warm
    run a developer sees every day: jars, packages, storage and database all there, brokers down.
    """
    cluster = LocalCluster(root / "kafka", port_base=MAKE_RUN_PORT_BASE, libs_dir=REPO_LIBS)
    env = make_run_env(root, cluster)
    progress(f"make run on fresh storage, ports {MAKE_RUN_PORT_BASE}+, until /cluster/ answers")
    first, _ = make_run_until_served(env, cluster)
    progress("make run again (warm)")
    warm, kafka_ready = make_run_until_served(env, cluster)
    return [
        Figure("make run → page served (fresh storage)", first, "s", "formats storage, migrates a new database"),
        Figure("warm make run → page served", warm, "s", f"Kafka ready after {kafka_ready:.1f} s"),
    ]


def make_run_env(root: Path, cluster: LocalCluster) -> dict[str, str]:
    """The caller's environment without kafkalab's variables (make run's defaults apply), with
    the cluster, database and port of this run."""
    dropped = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "REDIS_URL"}
    prefixes = ("KAFKA_", "DJANGO_")
    env = {key: value for key, value in os.environ.items() if key not in dropped and not key.startswith(prefixes)}
    return {
        **env,
        "PORT": str(free_port()),
        "KAFKA_LOCAL_DIR": str(cluster.root),
        "KAFKA_LOCAL_PORT_BASE": str(cluster.port_base),
        "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }


def make_run_until_served(env: dict[str, str], cluster: LocalCluster) -> tuple[float, float]:
    """Seconds from `make run` to the first 200 of /cluster/, and to serve's "Kafka is ready";
    then Ctrl-C, as a developer stops it, and a check that its brokers stopped."""
    url = f"http://127.0.0.1:{env['PORT']}/cluster/"
    started = time.perf_counter()
    # A session of its own, so that the Ctrl-C below reaches make and everything it started.
    make = subprocess.Popen(
        ["make", "run"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    output: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: output.extend((time.perf_counter(), line) for line in make.stdout))
    reader.start()
    try:
        served = wait_for_200(url, make, timeout=180.0) - started
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already if make failed
            os.killpg(make.pid, signal.SIGINT)
        try:
            make.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        reader.join()
        left_running = [broker.node_id for broker in cluster.status().brokers if broker.alive]
        stop_and_verify(cluster)
    if left_running:
        raise RuntimeError(f"Ctrl-C on `make run` left Kafka node(s) {left_running} running.")
    ready = next((at - started for at, line in output if "Kafka is ready at" in line), float("nan"))
    return served, ready


def wait_for_200(url: str, process: subprocess.Popen, *, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`make run` exited with code {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.perf_counter()
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_cluster_id(cluster: LocalCluster) -> str | None:
    try:
        return json.loads(cluster.state_file.read_text()).get("cluster_id")
    except (FileNotFoundError, ValueError):
        return None


def stop_and_verify(cluster: LocalCluster) -> None:
    """Down, then make sure no JVM of this cluster survived; kill and report any that did."""
    try:
        cluster.down(grace=10.0)
    finally:
        leftovers = cluster_javas(cluster)
        for process in leftovers:
            process.kill()
        if leftovers:
            pids = ", ".join(str(process.pid) for process in leftovers)
            raise RuntimeError(f"java process(es) {pids} of the bench cluster outlived `down`; killed them.")


def cluster_javas(cluster: LocalCluster) -> list[psutil.Process]:
    """Java processes whose command line points into this cluster's directory (brokers, format)."""
    marker = str(cluster.cluster_dir)
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "java" and any(marker in arg for arg in cmdline):
            found.append(process)
    return found


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
