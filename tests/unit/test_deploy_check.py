"""The classroom runs HTTPS behind a reverse proxy: `check --deploy` is clean with its settings,
and Django trusts the proxy's X-Forwarded-Proto only when told a proxy is in front.

Each test starts Django in a child process with settings.py reading the classroom's environment,
as the web container does. Nothing here talks to Kafka: the system checks import the views (and
confluent_kafka with them) but open no connection and start no process.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "kafkalab.example.org"
# What .env sets for a classroom behind the compose file's Caddy (see README.md).
CLASSROOM_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": HOST,
    "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
    "DJANGO_BEHIND_HTTPS_PROXY": "1",
    "DJANGO_HSTS_SECONDS": "31536000",
}
# Variables settings.py reads; the child sees only the ones a test gives it.
SETTINGS_ENV_PREFIXES = ("DJANGO_", "KAFKA_", "LAB_", "SCHEMA_REGISTRY_", "CLUSTER_WATCH_", "CLASSROOM_")
SETTINGS_ENV_NAMES = {"DATABASE_URL", "REDIS_URL", "LOG_LEVEL"}


def run_django(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith(SETTINGS_ENV_PREFIXES) or name in SETTINGS_ENV_NAMES)
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={**inherited, "DJANGO_SETTINGS_MODULE": "kafkalab.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_django(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)


def test_the_classroom_settings_pass_check_deploy():
    result = check_deploy(CLASSROOM_ENV)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in output and "security.W" not in output


def test_without_hsts_check_deploy_reports_w004_and_fails():
    env = {name: value for name, value in CLASSROOM_ENV.items() if name != "DJANGO_HSTS_SECONDS"}
    result = check_deploy(env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "security.W004" in result.stderr
    # HSTS is the only thing missing: nothing else is reported.
    assert "System check identified 1 issue " in result.stderr


# Run in the child: two requests for the page compose's healthcheck asks for, one as the proxy
# forwards an HTTPS request, one as plain HTTP reaching daphne without it.
REQUESTS = """
import json, sys, django
django.setup()
from django.test import Client

client = Client(HTTP_HOST=sys.argv[1])
seen = {}
for name, headers in {"forwarded_https": {"HTTP_X_FORWARDED_PROTO": "https"}, "plain": {}}.items():
    response = client.get("/admin/login/", **headers)
    seen[name] = {
        "status": response.status_code,
        "location": response.get("Location"),
        # Django sends HSTS on secure requests only: it says the request was seen as HTTPS.
        "hsts": response.get("Strict-Transport-Security"),
    }
print(json.dumps(seen))
"""


def requests_seen(env: dict[str, str]) -> dict:
    result = run_django(["-c", REQUESTS, HOST], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_behind_the_proxy_forwarded_https_is_secure_and_plain_http_is_redirected():
    seen = requests_seen(CLASSROOM_ENV)
    assert seen["forwarded_https"] == {"status": 200, "location": None, "hsts": "max-age=31536000"}
    assert seen["plain"] == {"status": 301, "location": f"https://{HOST}/admin/login/", "hsts": None}


def test_without_the_proxy_setting_the_forwarded_header_is_not_trusted():
    # Anyone could send X-Forwarded-Proto; with no proxy in front it proves nothing. No redirect
    # either: daphne alone serves plain HTTP, so https:// would lead nowhere.
    env = {name: value for name, value in CLASSROOM_ENV.items() if name != "DJANGO_BEHIND_HTTPS_PROXY"}
    seen = requests_seen(env)
    assert seen["forwarded_https"] == {"status": 200, "location": None, "hsts": None}
    assert seen["plain"] == {"status": 200, "location": None, "hsts": None}
