"""kafkalab/settings.py reads the environment: helpers, the secret key, switched-on integrations."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from kafkalab import settings as kafkalab_settings
from kafkalab.checks import check_secret_key, require_secret_key
from kafkalab.kafka.config import client_config
from kafkalab.settings import env_bool, env_int, env_list

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO_ROOT / "kafkalab" / "settings.py"
# Variables settings.py reads; each test starts without any of them.
SETTINGS_ENV_PREFIXES = ("DJANGO_", "KAFKA_", "LAB_", "SCHEMA_REGISTRY_", "CLUSTER_WATCH_")
SETTINGS_ENV_NAMES = {"DATABASE_URL", "REDIS_URL", "LOG_LEVEL"}


def _is_settings_variable(name: str) -> bool:
    if name == "DJANGO_SETTINGS_MODULE":
        return False
    return name.startswith(SETTINGS_ENV_PREFIXES) or name in SETTINGS_ENV_NAMES


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Execute settings.py anew under the given environment, as a module nobody else imports,
    so nothing leaks into django.conf.settings or into other tests."""
    for name in list(os.environ):
        if _is_settings_variable(name):
            monkeypatch.delenv(name)

    def load(**env: str) -> ModuleType:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        spec = importlib.util.spec_from_file_location("kafkalab_settings_under_test", SETTINGS_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def child_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not _is_settings_variable(name)}
    env["DJANGO_SETTINGS_MODULE"] = "kafkalab.settings"
    env.update(extra)
    return env


# --- env helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On "])
def test_env_bool_true_values(monkeypatch, value):
    monkeypatch.setenv("KAFKALAB_TEST_FLAG", value)
    assert env_bool("KAFKALAB_TEST_FLAG") is True


@pytest.mark.parametrize("value", ["0", "false", "no", "off", "anything"])
def test_env_bool_false_values(monkeypatch, value):
    monkeypatch.setenv("KAFKALAB_TEST_FLAG", value)
    assert env_bool("KAFKALAB_TEST_FLAG", default=True) is False


@pytest.mark.parametrize("value", [None, "", "   "])
def test_env_bool_unset_or_blank_gives_the_default(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("KAFKALAB_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("KAFKALAB_TEST_FLAG", value)
    assert env_bool("KAFKALAB_TEST_FLAG") is False
    assert env_bool("KAFKALAB_TEST_FLAG", default=True) is True


def test_env_int_reads_a_whole_number(monkeypatch):
    monkeypatch.setenv("KAFKALAB_TEST_INT", " 39092 ")
    assert env_int("KAFKALAB_TEST_INT", 1) == 39092


def test_env_int_unset_or_blank_gives_the_default(monkeypatch):
    monkeypatch.delenv("KAFKALAB_TEST_INT", raising=False)
    assert env_int("KAFKALAB_TEST_INT", 7) == 7
    monkeypatch.setenv("KAFKALAB_TEST_INT", "  ")
    assert env_int("KAFKALAB_TEST_INT", 7) == 7


@pytest.mark.parametrize("value", ["abc", "9092.5", "9 092"])
def test_env_int_rejects_a_non_number_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("KAFKALAB_TEST_INT", value)
    with pytest.raises(ImproperlyConfigured, match=r"KAFKALAB_TEST_INT must be a whole number") as excinfo:
        env_int("KAFKALAB_TEST_INT", 1)
    assert repr(value) in str(excinfo.value)


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("KAFKALAB_TEST_LIST", " a.example , b.example,, ,c.example ")
    assert env_list("KAFKALAB_TEST_LIST", ["default"]) == ["a.example", "b.example", "c.example"]


def test_env_list_unset_or_blank_gives_the_default(monkeypatch):
    monkeypatch.delenv("KAFKALAB_TEST_LIST", raising=False)
    assert env_list("KAFKALAB_TEST_LIST", ["default"]) == ["default"]
    monkeypatch.setenv("KAFKALAB_TEST_LIST", " ")
    assert env_list("KAFKALAB_TEST_LIST", ["default"]) == ["default"]


# --- secrets and debug ----------------------------------------------------------------------


SECRET_KEY_MISSING = "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (make run sets DJANGO_DEBUG=1)."


# Run in a child: what Django's start-up, the system checks and require_secret_key() say.
SERVE_GUARDS = """
import json, django
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from kafkalab.checks import require_secret_key

django.setup()
errors = [e.msg for e in checks.run_checks(tags=[checks.Tags.security]) if e.id == "kafkalab.E001"]
try:
    require_secret_key()
    raised = None
except ImproperlyConfigured as exc:
    raised = str(exc)
print(json.dumps({"errors": errors, "raised": raised}))
"""


def serve_guards(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SERVE_GUARDS],
        cwd=REPO_ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_a_secret_key_django_starts_but_refuses_to_serve():
    # Cluster commands need Django to start without a key; these two stop whatever serves.
    assert serve_guards(DJANGO_DEBUG="0") == {"errors": [SECRET_KEY_MISSING], "raised": SECRET_KEY_MISSING}


def test_with_a_secret_key_or_debug_on_nothing_refuses():
    assert serve_guards(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="a-real-secret") == {"errors": [], "raised": None}
    assert serve_guards(DJANGO_DEBUG="1") == {"errors": [], "raised": None}


def test_secret_key_from_the_environment_is_used_when_debug_is_off():
    script = "import json, django; from django.conf import settings; django.setup(); print(json.dumps([settings.DEBUG, settings.SECRET_KEY, settings.SESSION_COOKIE_SECURE]))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=child_env(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="a-real-secret"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, "a-real-secret", True]


def test_debug_without_a_secret_key_uses_a_dev_only_key(fresh_settings):
    settings = fresh_settings(DJANGO_DEBUG="1")
    assert settings.DEBUG is True
    assert "insecure" in settings.SECRET_KEY


def test_debug_off_without_a_secret_key_leaves_the_key_empty(fresh_settings):
    assert fresh_settings(DJANGO_DEBUG="0").SECRET_KEY == ""
    assert fresh_settings().SECRET_KEY == ""  # debug is off unless DJANGO_DEBUG says otherwise


def test_the_secret_key_check_passes_with_a_key(settings):
    settings.SECRET_KEY = "a-real-secret"
    settings.DEBUG = False
    require_secret_key()
    assert check_secret_key() == []


def test_the_secret_key_check_fails_without_a_key(settings):
    settings.SECRET_KEY = ""
    settings.DEBUG = False
    with pytest.raises(ImproperlyConfigured) as excinfo:
        require_secret_key()
    assert str(excinfo.value) == SECRET_KEY_MISSING
    [error] = check_secret_key()
    assert (error.id, error.msg, error.level) == ("kafkalab.E001", SECRET_KEY_MISSING, checks.ERROR)
    assert error in checks.run_checks(tags=[checks.Tags.security])


def test_allowed_hosts_default_to_loopback_and_follow_the_environment(fresh_settings):
    assert fresh_settings(DJANGO_DEBUG="1").ALLOWED_HOSTS == ["127.0.0.1", "localhost"]
    settings = fresh_settings(DJANGO_ALLOWED_HOSTS="lab.example.org, 10.0.0.5")
    assert settings.ALLOWED_HOSTS == ["lab.example.org", "10.0.0.5"]


# --- integrations switch on with their variable ---------------------------------------------


def test_without_redis_url_the_channel_layer_is_in_memory_and_the_runner_embedded(fresh_settings):
    settings = fresh_settings(DJANGO_DEBUG="1")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert settings.LAB_RUNNER_EMBEDDED is True


def test_redis_url_switches_the_channel_layer_to_channels_redis(fresh_settings):
    settings = fresh_settings(DJANGO_DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/2")
    assert settings.CHANNEL_LAYERS["default"] == {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:6379/2", "socket_timeout": 15}], "capacity": 1000},
    }
    # Join attempts are counted in the same Redis, so every web process refuses a guesser alike.
    assert settings.CACHES["default"]["LOCATION"] == "redis://127.0.0.1:6379/2"
    # A shared layer means the lab runner is its own service unless told otherwise.
    assert settings.LAB_RUNNER_EMBEDDED is False
    assert fresh_settings(LAB_RUNNER_EMBEDDED="1").LAB_RUNNER_EMBEDDED is True


def test_without_database_url_the_database_is_sqlite(fresh_settings):
    database = fresh_settings(DJANGO_DEBUG="1").DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(REPO_ROOT / "db.sqlite3")


def test_database_url_switches_to_postgres(fresh_settings):
    settings = fresh_settings(DJANGO_DEBUG="1", DATABASE_URL="postgres://lab:s3cret@db.internal:5433/kafkalab")
    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.internal", 5433, "kafkalab")
    assert (database["USER"], database["PASSWORD"]) == ("lab", "s3cret")


def test_kafka_security_variables_land_in_kafka_client_security(fresh_settings):
    settings = fresh_settings(
        DJANGO_DEBUG="1",
        KAFKA_BOOTSTRAP_SERVERS=" broker.example:9092 ",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="student",
        KAFKA_SASL_PASSWORD="hunter2",
        KAFKA_SSL_CA_LOCATION="  ",  # blank: dropped, librdkafka keeps its default
    )
    assert settings.KAFKA_BOOTSTRAP_SERVERS == "broker.example:9092"
    assert settings.KAFKA_CLIENT_SECURITY == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "student",
        "sasl.password": "hunter2",
    }


def test_without_kafka_variables_the_local_cluster_defaults_apply(fresh_settings):
    settings = fresh_settings(DJANGO_DEBUG="1")
    assert settings.KAFKA_BOOTSTRAP_SERVERS == ""
    assert settings.KAFKA_CLIENT_SECURITY == {}
    assert settings.KAFKA_LOCAL_DIR == REPO_ROOT / ".kafka"
    assert settings.KAFKA_LIBS_DIR == REPO_ROOT / ".kafka" / "libs"
    assert (settings.KAFKA_LOCAL_PORT_BASE, settings.KAFKA_LOCAL_BROKERS) == (9092, 3)


def test_kafka_local_variables_move_the_local_cluster(fresh_settings, tmp_path):
    settings = fresh_settings(
        DJANGO_DEBUG="1",
        KAFKA_LOCAL_DIR=str(tmp_path / "kafka"),
        KAFKA_LIBS_DIR=str(tmp_path / "libs"),
        KAFKA_LOCAL_PORT_BASE="39092",
        KAFKA_LOCAL_BROKERS="1",
    )
    local_dir, libs_dir = settings.KAFKA_LOCAL_DIR, settings.KAFKA_LIBS_DIR
    assert (local_dir, libs_dir) == (tmp_path / "kafka", tmp_path / "libs")
    assert (settings.KAFKA_LOCAL_PORT_BASE, settings.KAFKA_LOCAL_BROKERS) == (39092, 1)


def test_a_bad_port_base_stops_the_settings_naming_the_variable(fresh_settings):
    with pytest.raises(ImproperlyConfigured, match="KAFKA_LOCAL_PORT_BASE must be a whole number"):
        fresh_settings(DJANGO_DEBUG="1", KAFKA_LOCAL_PORT_BASE="ninety")


def test_fresh_settings_leave_the_imported_settings_alone(fresh_settings):
    fresh_settings(DJANGO_DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/0")
    assert "channels_redis" not in json.dumps(kafkalab_settings.CHANNEL_LAYERS)


def test_client_config_merges_bootstrap_security_and_overrides(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "broker.example:9092"
    settings.KAFKA_CLIENT_SECURITY = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    config = client_config(**{"group.id": "lab", "sasl.mechanism": "SCRAM-SHA-256"})
    assert config == {
        "bootstrap.servers": "broker.example:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "group.id": "lab",
    }
