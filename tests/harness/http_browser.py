"""HTTP as a learner's browser speaks it, without a browser: cookies (session, CSRF), forms, and
the first visit that gives a learner a lab of their own."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

# A bound on waiting, not an expectation of speed: the machine may be busy with other test runs.
HTTP_TIMEOUT = 60.0
LAB_URL = re.compile(r"/labs/(\d+)/$")
LABS_PATH = "/labs/"  # POST here (the start page's "Start my lab") creates a lab


def lab_id_in(url: str) -> int | None:
    """The lab id when `url` is a lab's page, else None."""
    match = LAB_URL.search(urllib.parse.urlparse(url).path)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Response:
    status: int
    text: str
    url: str


class Browser:
    """One browser: its own cookies (session, CSRF), posting forms the way the page's htmx does."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def get(self, path: str) -> Response:
        return self._send(urllib.request.Request(self.base_url + path))

    def post(self, path: str, data: dict | None = None, *, htmx: bool = True) -> Response:
        """A form post with the CSRF token, by htmx (as the lab page's forms post) or plain."""
        token = self.cookie("csrftoken")
        assert token, "no CSRF cookie yet: open a page with a form first"
        headers = {"X-CSRFToken": token, "Origin": self.base_url, "Referer": self.base_url + path}
        if htmx:
            headers["HX-Request"] = "true"
        body = urllib.parse.urlencode(data or {}, doseq=True).encode()
        return self._send(urllib.request.Request(self.base_url + path, data=body, headers=headers, method="POST"))

    def start_lab(self) -> int:
        """The learner's first visit: / shows the start page, whose "Start my lab" posts to
        /labs/ and is redirected to the new lab (while / still redirects to a new lab itself,
        that redirect is taken instead). Returns the lab's id."""
        response = self.get("/")
        assert response.status == 200, response.text[:500]
        if (lab_id := lab_id_in(response.url)) is not None:
            return lab_id
        # The form's hidden field carries the token a plain (non-htmx) post needs.
        response = self.post(LABS_PATH, {"csrfmiddlewaretoken": self.cookie("csrftoken")}, htmx=False)
        assert response.status == 200, response.text[:500]  # after the 302 to the lab's page
        lab_id = lab_id_in(response.url)
        assert lab_id is not None, f"POST {LABS_PATH} led to {response.url}, not to a lab"
        return lab_id

    def _send(self, request: urllib.request.Request) -> Response:
        try:
            with self._opener.open(request, timeout=HTTP_TIMEOUT) as response:
                return Response(response.status, response.read().decode(), response.geturl())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.read().decode(errors="replace"), error.geturl())
