"""Section `consumers`: NotificationService processes seen from a real Chromium page.

A 3-broker cluster (ports 63492+) and a daphne of its own. Times are taken in the bench around
Playwright: from the click to the moment the page shows the new assignment (polled every
animation frame). Then what a consumer process costs, and how many one lab runner sustains.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.report import Figure, progress
from bench.server import lab_stack
from kafkalab.kafka.consumer_config import heartbeat_interval_ms
from kafkalab.kafka.local_cluster import LocalCluster
from tests.harness import server as harness
from tests.harness.browser import VIEWPORT, launch_chromium
from tests.harness.lab_page import open_lab

# The dev cluster uses 9092-9097, the tests 29092+, the cluster section 63092+, lab 63292+ (all above the kernel's ephemeral range, 32768-60999).
PORT_BASE = 63492
BROKERS = 3
MAX_CONSUMERS = 8  # LAB_MAX_CONSUMERS, passed to daphne so the limit is the one measured
ADD_SAMPLES = 5  # fresh labs: first consumer, then a second one
KILL_TIMEOUTS_MS = (6000, 10_000)
KILL_SAMPLES = 2  # per session timeout
STOP_SAMPLES = 5
IDLE_CONSUMERS = 4
SETTLE_SECONDS = 5.0
CPU_SAMPLE_SECONDS = 5.0
CAPACITY_LABS = 6  # × MAX_CONSUMERS = 48 processes
CAPACITY_PARTITIONS = MAX_CONSUMERS  # one partition each, so every consumer gets an assignment
CAPACITY_DEADLINE_S = 240.0
DEFAULT_SESSION_MS = 10_000  # the lab's default session.timeout.ms
PAGE_TIMEOUT_MS = 60_000
MIB = 2**20
SERVICE_MODULE = "kafkalab.kafka.notification_service"
TOOK = re.compile(r"took (\d+) ms")

CARD_JS = """([name, wanted]) => {
  const card = document.querySelector(`[data-consumer="${name}"]`);
  if (!card) return false;
  return wanted === null ? card.dataset.partitions !== "" : card.dataset.partitions === wanted;
}"""

ASSIGNED_RUNNING_JS = """() => [...document.querySelectorAll('[data-consumer]')]
  .filter(c => c.dataset.status === 'running' && c.dataset.partitions !== '').length"""


def run() -> list[Figure]:
    try:
        with lab_stack("consumers", port_base=PORT_BASE, brokers=BROKERS, server_class=Server) as (_, server):
            return measure(server)
    finally:
        verify_no_consumers_left()


# --- the server -----------------------------------------------------------------------------


class Server(harness.Server):
    """The bench's daphne, allowed more consumers per lab than the default."""

    def __init__(self, root: Path, cluster: LocalCluster) -> None:
        super().__init__(root, cluster, LAB_MAX_CONSUMERS=str(MAX_CONSUMERS))

    def consumers(self) -> list[psutil.Process]:
        """The NotificationService processes this daphne's lab runner started."""
        found = []
        for child in self.ps.children():
            try:
                if SERVICE_MODULE in child.cmdline():
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found


def our_consumer_processes() -> list[psutil.Process]:
    """NotificationService processes talking to this section's cluster, whoever their parent now is."""
    marker = f"127.0.0.1:{PORT_BASE}"
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if SERVICE_MODULE in cmdline and any(marker in arg for arg in cmdline):
            found.append(process)
    return found


def verify_no_consumers_left(grace: float = 5.0) -> None:
    """The consumers end with their runner (PR_SET_PDEATHSIG): after a moment, none may remain."""
    deadline = time.monotonic() + grace
    while (leftovers := our_consumer_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in leftovers:
        process.kill()
    if leftovers:
        pids = ", ".join(str(p.pid) for p in leftovers)
        raise RuntimeError(f"notification_service process(es) {pids} outlived the bench's daphne; killed them.")


# --- the page -------------------------------------------------------------------------------


class Lab:
    """One learner: a browser context of its own, so a lab of its own."""

    def __init__(self, browser, server: Server) -> None:
        self.server = server
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        open_lab(self.page, server.url, timeout_ms=PAGE_TIMEOUT_MS)

    def card(self, name: str):
        return self.page.locator(f'[data-consumer="{name}"]')

    def add_consumer(self, *, session_timeout_ms: int | None = None) -> Callable[[], None]:
        """The click on "Add consumer" (after setting the session timeout, when given)."""
        controls = self.page.locator("#consumer-controls")
        if session_timeout_ms is not None:
            controls.locator("summary", has_text="Consumer config").click()
            controls.get_by_label("session.timeout.ms").fill(str(session_timeout_ms))
        return controls.get_by_role("button", name="Add consumer").click

    def button(self, name: str, label: str) -> Callable[[], None]:
        return self.card(name).get_by_role("button", name=label).click

    def wait_partitions(self, name: str, wanted: str | None = None) -> None:
        """Until the card shows `wanted` partitions (any, when None); polled every frame."""
        self.page.wait_for_function(CARD_JS, arg=[name, wanted], polling="raf")

    def timed(self, click: Callable[[], None], name: str, wanted: str | None = None) -> float:
        started = time.perf_counter()
        click()
        self.wait_partitions(name, wanted)
        return time.perf_counter() - started

    def wait_added(self, name: str) -> None:
        notice = self.page.locator("#consumer-controls [role=status], #consumer-controls [role=alert]")
        notice.filter(has_text=re.compile(rf"Starting {name}\b|at most")).wait_for()
        if self.page.locator("#consumer-controls [role=alert]").count():
            raise RuntimeError(self.page.locator("#consumer-controls [role=alert]").inner_text())
        # htmx wires up swapped-in forms when they settle (20 ms later); a click before that
        # would submit the form natively, as a full page load.
        self.page.locator("#consumer-controls:not(.htmx-added)").wait_for()

    def wait_split(self) -> None:
        self.wait_partitions("c1", "0,1")
        self.wait_partitions("c2", "2,3")

    def rebalance_took_ms(self, trigger: str) -> float:
        entry = self.page.get_by_test_id("rebalance").filter(has_text=trigger).first
        entry.filter(has_text="took").wait_for()
        return float(TOOK.search(entry.inner_text()).group(1))

    def set_partitions(self, count: int) -> None:
        self.page.locator("#partitions-input").fill(str(count))
        self.page.get_by_role("button", name="Change partitions").click()
        self.page.locator(".lane[data-lane]").nth(count - 1).wait_for()

    def assigned_running(self) -> int:
        return self.page.evaluate(ASSIGNED_RUNNING_JS)

    def reset(self) -> float:
        """Reset lab: the runner reaps every consumer first. Returns how long the request took."""
        self.page.once("dialog", lambda dialog: dialog.accept())
        started = time.perf_counter()
        try:
            self.page.get_by_role("button", name="Reset lab").click()
            self.page.get_by_text("Lab reset").wait_for()
        except Exception as exc:
            page_text = self.page.locator("body").inner_text()[:800]
            raise RuntimeError(
                f"reset failed on {self.page.url}:\n{page_text}\n--- daphne:\n{self.server.log_tail()}"
            ) from exc
        return time.perf_counter() - started

    def close(self) -> None:
        self.context.close()


# --- the measurement ------------------------------------------------------------------------


def measure(server: Server) -> list[Figure]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            return [
                *add_figures(browser, server),
                *kill_figures(browser, server),
                *stop_figures(browser, server),
                *idle_figures(browser, server),
                *capacity_figures(browser, server),
            ]
        finally:
            browser.close()


def add_figures(browser, server: Server) -> list[Figure]:
    firsts, seconds = [], []
    for sample in range(ADD_SAMPLES):
        progress(f"add consumer → assignment on screen, fresh lab {sample + 1}/{ADD_SAMPLES}")
        lab = Lab(browser, server)
        try:
            firsts.append(lab.timed(lab.add_consumer(), "c1"))
            lab.wait_partitions("c1", "0,1,2,3")
            seconds.append(lab.timed(lab.add_consumer(), "c2"))
            lab.wait_split()
            lab.reset()
        finally:
            lab.close()
    note = f"click → card shows its partitions; {ADD_SAMPLES} fresh labs, default config"
    return [
        Figure("add → assigned, 1st consumer p50", _ms(statistics.median(firsts)), "ms", note, digits=0),
        Figure("add → assigned, 1st consumer max", _ms(max(firsts)), "ms", "empty group: no one to wait for", digits=0),
        Figure(
            "add → assigned, 2nd consumer p50",
            _ms(statistics.median(seconds)),
            "ms",
            f"rebalance: c1 rejoins at its next heartbeat ({_default_heartbeat()})",
            digits=0,
        ),
        Figure("add → assigned, 2nd consumer max", _ms(max(seconds)), "ms", digits=0),
    ]


def kill_figures(browser, server: Server) -> list[Figure]:
    figures = []
    for timeout_ms in KILL_TIMEOUTS_MS:
        lab = Lab(browser, server)
        try:
            lab.add_consumer(session_timeout_ms=timeout_ms)()
            lab.wait_partitions("c1", "0,1,2,3")
            lab.add_consumer(session_timeout_ms=timeout_ms)()
            lab.wait_split()
            heals, reported = [], []
            for sample in range(KILL_SAMPLES):
                progress(f"kill c1 → c2 owns all, session.timeout.ms={timeout_ms}, {sample + 1}/{KILL_SAMPLES}")
                heals.append(lab.timed(lab.button("c1", "Kill"), "c2", "0,1,2,3"))
                reported.append(lab.rebalance_took_ms("c1 was killed"))
                lab.button("c1", "Restart")()
                lab.wait_split()
            lab.reset()
        finally:
            lab.close()
        heartbeat_ms = heartbeat_interval_ms(timeout_ms)
        figures += [
            Figure(
                f"kill → healed, session {timeout_ms / 1000:g} s, p50",
                statistics.median(heals),
                "s",
                f"session.timeout.ms {timeout_ms}, heartbeat {heartbeat_ms} ms; survivor's card owns 0-3",
                digits=2,
            ),
            Figure(
                f"kill → healed, session {timeout_ms / 1000:g} s, max",
                max(heals),
                "s",
                f"{KILL_SAMPLES} kills; timeline said {', '.join(f'{t / 1000:.2f} s' for t in reported)}",
                digits=2,
            ),
        ]
    return figures


def stop_figures(browser, server: Server) -> list[Figure]:
    lab = Lab(browser, server)
    stops, reported = [], []
    try:
        lab.add_consumer()()
        lab.wait_partitions("c1", "0,1,2,3")
        lab.add_consumer()()
        lab.wait_split()
        for sample in range(STOP_SAMPLES):
            progress(f"stop c1 → c2 owns all, default config, {sample + 1}/{STOP_SAMPLES}")
            stops.append(lab.timed(lab.button("c1", "Stop"), "c2", "0,1,2,3"))
            reported.append(lab.rebalance_took_ms("c1 stopped"))
            lab.button("c1", "Restart")()
            lab.wait_split()
        lab.reset()
    finally:
        lab.close()
    return [
        Figure(
            "stop → rebalanced p50",
            _ms(statistics.median(stops)),
            "ms",
            f"click → survivor's card owns 0-3; {_default_heartbeat()}",
            digits=0,
        ),
        Figure(
            "stop → rebalanced max",
            _ms(max(stops)),
            "ms",
            f"{STOP_SAMPLES} stops; timeline p50 {statistics.median(reported):.0f} ms",
            digits=0,
        ),
    ]


def idle_figures(browser, server: Server) -> list[Figure]:
    lab = Lab(browser, server)
    try:
        for number in range(1, IDLE_CONSUMERS + 1):
            lab.add_consumer()()
            lab.wait_added(f"c{number}")
        for number in range(1, IDLE_CONSUMERS + 1):
            lab.wait_partitions(f"c{number}", str(number - 1))
        progress(f"{IDLE_CONSUMERS} consumers idle {SETTLE_SECONDS:.0f} s, then CPU over {CPU_SAMPLE_SECONDS:.0f} s")
        time.sleep(SETTLE_SECONDS)
        processes = server.consumers()
        rss, uss, cpu = memory_and_cpu(processes)
        lab.reset()
    finally:
        lab.close()
    note = f"{len(processes)} processes, one partition each"
    return [
        Figure("consumer RSS, mean", statistics.mean(rss) / MIB, "MiB", f"max {max(rss) / MIB:.1f}; {note}"),
        Figure("consumer USS, mean", statistics.mean(uss) / MIB, "MiB", "memory of its own, not shared"),
        Figure(
            "consumer CPU, idle, mean",
            statistics.mean(cpu),
            "%",
            f"max {max(cpu):.1f} %, of one core, over {CPU_SAMPLE_SECONDS:.0f} s",
            digits=2,
        ),
    ]


def capacity_figures(browser, server: Server) -> list[Figure]:
    wanted = CAPACITY_LABS * MAX_CONSUMERS
    labs: list[Lab] = []
    refused = ""
    try:
        progress(f"{CAPACITY_LABS} labs × {MAX_CONSUMERS} consumers, {CAPACITY_PARTITIONS} partitions each")
        started = time.perf_counter()
        for _ in range(CAPACITY_LABS):
            lab = Lab(browser, server)
            labs.append(lab)
            lab.set_partitions(CAPACITY_PARTITIONS)
            for number in range(1, MAX_CONSUMERS + 1):
                try:
                    lab.add_consumer()()
                    lab.wait_added(f"c{number}")
                except Exception as exc:  # a figure, not a crash: how far it got
                    refused = f"add c{number} failed: {str(exc)[:80]}"
                    break
            if refused:
                break
        clicked = time.perf_counter() - started
        progress(f"waiting up to {CAPACITY_DEADLINE_S:.0f} s for every consumer to run with a partition")
        deadline = time.perf_counter() + CAPACITY_DEADLINE_S
        while (assigned := sum(lab.assigned_running() for lab in labs)) < wanted and time.perf_counter() < deadline:
            time.sleep(0.5)
        all_assigned = time.perf_counter() - started
        limit_refused = not refused and refuses_one_more(labs[-1])
        time.sleep(SETTLE_SECONDS)
        processes = server.consumers()
        server.ps.cpu_percent(None)
        rss, uss, cpu = memory_and_cpu(processes)  # sleeps CPU_SAMPLE_SECONDS: daphne's interval too
        daphne_cpu = server.ps.cpu_percent(None)
        daphne_rss = server.ps.memory_info().rss
        progress("reset every lab: the runner reaps their consumers")
        resets = [lab.reset() for lab in labs]
        left = len(server.consumers())
    finally:
        for lab in labs:
            lab.close()
    return [
        Figure(
            "capacity: running with a partition",
            assigned,
            f"of {wanted}",
            f"{len(labs)} labs; {refused or 'no add refused'}",
            digits=0,
        ),
        Figure("capacity: processes alive", len(processes), "procs", "children of daphne", digits=0),
        Figure("capacity: clicks → all assigned", all_assigned, "s", f"the {wanted} clicks took {clicked:.0f} s"),
        Figure(
            f"capacity: consumer {MAX_CONSUMERS + 1} in a lab",
            float(limit_refused),
            "refused",
            "1 = refused with the limit message",
            digits=0,
        ),
        Figure(
            "capacity: consumers' RSS, total", sum(rss) / MIB, "MiB", f"USS total {sum(uss) / MIB:.0f} MiB", digits=0
        ),
        Figure(
            "capacity: consumers' CPU, total",
            sum(cpu),
            "%",
            f"of one core, idle; max per process {max(cpu, default=0):.1f} %",
            digits=1,
        ),
        Figure("capacity: daphne RSS", daphne_rss / MIB, "MiB", "runner + web, in one process", digits=0),
        Figure(
            "capacity: daphne CPU",
            daphne_cpu,
            "%",
            f"of one core, over {CPU_SAMPLE_SECONDS:.0f} s, {len(labs)} lab pages open",
            digits=1,
        ),
        Figure(
            "capacity: reset per lab, p50",
            statistics.median(resets),
            "s",
            f"max {max(resets):.1f} s; reaps {MAX_CONSUMERS} consumers",
            digits=2,
        ),
        Figure("capacity: consumers left after reset", left, "procs", digits=0),
    ]


def refuses_one_more(lab: Lab) -> bool:
    """A click on "Add consumer" in a full lab: refused, with a message naming the limit."""
    lab.add_consumer()()
    alert = lab.page.locator("#consumer-controls [role=alert]").filter(has_text=f"at most {MAX_CONSUMERS}")
    try:
        alert.wait_for(timeout=10_000)
    except Exception:
        return False
    return True


def memory_and_cpu(processes: list[psutil.Process]) -> tuple[list[int], list[int], list[float]]:
    """RSS and USS now, and CPU % over CPU_SAMPLE_SECONDS, per process."""
    rss = [p.memory_info().rss for p in processes]
    uss = [p.memory_full_info().uss for p in processes]
    for process in processes:
        process.cpu_percent(None)  # the first call only starts the interval
    time.sleep(CPU_SAMPLE_SECONDS)
    cpu = [p.cpu_percent(None) for p in processes]
    return rss, uss, cpu


def _default_heartbeat() -> str:
    return f"heartbeat {heartbeat_interval_ms(DEFAULT_SESSION_MS)} ms at the default {DEFAULT_SESSION_MS / 1000:g} s session"


def _ms(seconds: float) -> float:
    return seconds * 1000
