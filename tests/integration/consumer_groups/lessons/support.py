"""Walking a lesson as a learner does: begin it, predict, act, and read the steps' status from
the lesson page (what the server stored) or from the lab's websocket (what it pushed)."""

from __future__ import annotations

import html
import re
import time

from kafkalab.kafka import contracts
from kafkalab.kafka.contracts import Encoding
from tests.harness.http_browser import Response
from tests.integration.consumer_groups.support import STEP, Lab, wait_for

# How long the runner gets to look at the lab (it checks a step a few times a second) before a
# test concludes that a step did not pass.
SETTLE_SECONDS = 1.0
WHY = re.compile(r'data-step="(?P<step>[^"]+)"[^>]*>.*?<details class="step-why"[^>]*>(?P<why>.*?)</details>', re.S)


class LessonWalk:
    def __init__(self, lab: Lab, slug: str) -> None:
        self.lab, self.slug = lab, slug

    def page(self) -> str:
        response = self.lab.browser.get(f"/lessons/{self.slug}/")
        assert response.status == 200, response.text[:500]
        return response.text

    def statuses(self) -> dict[str, str]:
        return dict(STEP.findall(self.page()))

    def begin(self) -> None:
        response = self.lab.browser.post(self.lab.url(f"lessons/{self.slug}/begin/"), htmx=False)
        assert response.status == 200, response.text[:500]
        first = next(iter(self.statuses().items()))
        assert first[1] in ("current", "passed"), first

    def predict(self, step: str, choice: int) -> str:
        response = self.lab.browser.post(self.lab.url(f"lessons/{self.slug}/steps/{step}/predict/"), {"choice": choice})
        assert response.status == 200, response.text[:500]
        return response.text

    def still_current(self, step: str) -> None:
        """The step has not passed: the runner has looked at the lab a few times since."""
        time.sleep(SETTLE_SECONDS)
        assert self.statuses()[step] == "current", f"{step} should not have passed yet"

    def wait_passed(self, step: str) -> str:
        """The step passes; returns its explanation as the page shows it (tags removed)."""
        wait_for(lambda: self.statuses().get(step) == "passed", f"step {step} passing")
        return self.why(step)

    def why(self, step: str) -> str:
        for match in WHY.finditer(self.page()):
            if match["step"] == step:
                return html.unescape(re.sub(r"<[^>]+>", "", match["why"]))
        raise AssertionError(f"no explanation shown for {step}")


class Contract:
    """OrderService's writer schema, changed as the registry panel's buttons and forms do it:
    a one-click change applied to the schema in use, then "Use this schema" / "Register and use"."""

    def __init__(self, lab: Lab, encoding: str = "json") -> None:
        self.lab = lab
        self.encoding = Encoding(encoding)
        self.schema = contracts.v1_schema(self.encoding)

    def switch(self, encoding: str) -> None:
        """The encoding lever: OrderService writes version 1 in `encoding`."""
        response = self.lab.browser.post(self.lab.url("contract/encoding/"), {"encoding": encoding})
        assert response.status == 200, response.text[:1000]
        self.encoding = Encoding(encoding)
        self.schema = contracts.v1_schema(self.encoding)

    def use(self, change: str) -> Response:
        """Apply one-click change `change` and use it; the schema in use moves on only when the
        registry (if any) accepted it."""
        candidate = contracts.change_apply(self.encoding, self.schema, change)
        response = self.lab.browser.post(self.lab.url("contract/use/"), {"schema": contracts.schema_text(candidate)})
        if response.status == 200:
            self.schema = candidate
        return response

    def level(self, level: str) -> None:
        """The subject's own compatibility level."""
        response = self.lab.browser.post(self.lab.url("contract/compatibility/"), {"level": level})
        assert response.status == 200, response.text[:1000]


def flat(text: str) -> str:
    """An explanation on one line: the page wraps it wherever the Markdown source did."""
    return " ".join(text.split())
