"""kafkalab settings: one file, read from the environment (see .env.example).

Every integration switches on when its variable is set: DATABASE_URL (else SQLite),
REDIS_URL (else the in-memory channel layer), KAFKA_BOOTSTRAP_SERVERS (else the local
cluster that `manage.py kafka up` starts), SCHEMA_REGISTRY_URL (else the embedded registry).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", default=False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "insecure-dev-only-key-set-DJANGO_SECRET_KEY-in-production"
# Debug off and no key: SECRET_KEY stays empty rather than raising here, so commands that serve
# nothing (`manage.py kafka status`) still run; whatever serves refuses (kafkalab/checks.py).

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "kafkalab.cluster",
    "kafkalab.labs",
    "kafkalab.registry",
    "kafkalab.classroom",
    "lessons",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "kafkalab.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "kafkalab.asgi.application"

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web views and the lab runner write at once: take the write lock as a transaction starts
    # and wait for it, rather than fail with "database is locked" when a read turns into a write.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels_redis waits for a message with a blocking pop of up to 5 s; redis-py 8 reads
            # with a 5 s socket timeout by default, which cut those waits short with a TimeoutError
            # that kills the receiving consumer (the runner, a page's socket). Longer than the pop.
            # A web process that falls behind (30 busy labs on a small server) has its channels
            # fill up; past `capacity` channels_redis drops group messages without a word, and a
            # dropped records push is boxes a page never shows. 100 by default: room for bursts.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "capacity": 1000},
        }
    }
else:
    # Embedded mode: web and lab runner share one daphne process, so memory is enough.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    # Session and CSRF cookies only travel over HTTPS; 0 only to try a deployment over plain HTTP.
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# HTTPS ends at a reverse proxy, which talks plain HTTP to daphne: its X-Forwarded-Proto header is
# how Django learns the browser used HTTPS. Only on behind a proxy that sets that header and
# overwrites the client's, and that nobody can bypass: anyone else could claim HTTPS with it.
BEHIND_HTTPS_PROXY = env_bool("DJANGO_BEHIND_HTTPS_PROXY", default=False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Answer plain HTTP with a redirect to https. Not without a proxy by default: daphne speaks HTTP
# only, so a redirect would lead nowhere. Nothing is exempt: compose's healthcheck calls
# http://127.0.0.1:8000 directly but sends X-Forwarded-Proto: https, as the proxy would.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", default=not DEBUG and BEHIND_HTTPS_PROXY)
# HSTS: browsers that saw the site over HTTPS refuse plain HTTP to it for this many seconds. They
# remember it, so it is off (0) until asked for: start with an hour, then a year.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", default=False)
# `check --deploy` asks for both whenever HSTS is on, but each is a decision about names beyond
# this site's own host, which the domain's owner makes (the variables above turn them on):
# W005, includeSubDomains, makes every name under the host HTTPS-only; W021, the browsers'
# preload list, takes only a registrable domain (example.org), never a classroom's host name.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# --- Kafka -------------------------------------------------------------------------------
# Unset: the app talks to the local cluster (`manage.py kafka up`), whose ports follow
# KAFKA_LOCAL_PORT_BASE. Set: an external cluster; the app starts no broker.
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
# Passed to every client as-is, for managed clusters (SASL/SSL). Empty values are dropped.
KAFKA_CLIENT_SECURITY = {
    key: value
    for key, value in {
        "security.protocol": os.environ.get("KAFKA_SECURITY_PROTOCOL", ""),
        "sasl.mechanism": os.environ.get("KAFKA_SASL_MECHANISM", ""),
        "sasl.username": os.environ.get("KAFKA_SASL_USERNAME", ""),
        "sasl.password": os.environ.get("KAFKA_SASL_PASSWORD", ""),
        "ssl.ca.location": os.environ.get("KAFKA_SSL_CA_LOCATION", ""),
    }.items()
    if value.strip()
}
# Where the local cluster keeps its data and logs, and where Maven puts the broker jars.
KAFKA_LOCAL_DIR = Path(os.environ.get("KAFKA_LOCAL_DIR", "").strip() or BASE_DIR / ".kafka")
KAFKA_LIBS_DIR = Path(os.environ.get("KAFKA_LIBS_DIR", "").strip() or BASE_DIR / ".kafka" / "libs")
KAFKA_LOCAL_PORT_BASE = env_int("KAFKA_LOCAL_PORT_BASE", 9092)
KAFKA_LOCAL_BROKERS = env_int("KAFKA_LOCAL_BROKERS", 3)
KAFKA_LOCAL_HEAP_MB = env_int("KAFKA_LOCAL_HEAP_MB", 256)

# --- Schema registry ---------------------------------------------------------------------
# Unset: the embedded registry at the app's own /registry/ (Confluent's REST API, schemas kept
# in a compacted Kafka topic). Set: any other Confluent-compatible registry; nothing else changes.
SCHEMA_REGISTRY_URL = os.environ.get("SCHEMA_REGISTRY_URL", "").strip()
# The app's own address as seen from this machine: consumer processes reach the embedded
# registry through it. `manage.py serve` sets it from its port.
SITE_URL = (os.environ.get("KAFKALAB_SITE_URL", "").strip() or "http://127.0.0.1:8000").rstrip("/")
# Threads serving the embedded registry's REST API (apart from the lab views that call it).
SCHEMA_REGISTRY_VIEW_THREADS = env_int("SCHEMA_REGISTRY_VIEW_THREADS", 4)
# The embedded registry's topic (Confluent's kafkastore.topic); every app process reads it.
SCHEMA_REGISTRY_TOPIC = os.environ.get("SCHEMA_REGISTRY_TOPIC", "").strip() or "_schemas"
# Largest request body the embedded registry accepts (a schema and its envelope), in bytes.
SCHEMA_REGISTRY_MAX_REQUEST_BYTES = env_int("SCHEMA_REGISTRY_MAX_REQUEST_BYTES", 256 * 1024)
# Who may change the embedded registry: a function (request, subject) -> bool. The default lets
# anyone write (self-study); a classroom points it at a check for the learner's own lab subjects.
SCHEMA_REGISTRY_WRITE_CHECK = (
    os.environ.get("SCHEMA_REGISTRY_WRITE_CHECK", "").strip() or "kafkalab.registry.permissions.open_writes"
)

# How often the cluster watcher asks Kafka for broker state (seconds).
CLUSTER_WATCH_INTERVAL = float(os.environ.get("CLUSTER_WATCH_INTERVAL", "1.0"))
# The lab runner lives in the web process unless a separate `runworker lab-runner` service
# runs it, which needs a shared (Redis) channel layer.
LAB_RUNNER_EMBEDDED = env_bool("LAB_RUNNER_EMBEDDED", default=not REDIS_URL)

# --- Lab limits --------------------------------------------------------------------------
LAB_MAX_PARTITIONS = env_int("LAB_MAX_PARTITIONS", 12)
LAB_MAX_CONSUMERS = env_int("LAB_MAX_CONSUMERS", 8)
# BillingService instances are real processes too: a lab runs a few at most.
LAB_MAX_BILLING_INSTANCES = env_int("LAB_MAX_BILLING_INSTANCES", 4)
LAB_MAX_BURST = env_int("LAB_MAX_BURST", 1000)
LAB_MAX_PAYLOAD_BYTES = env_int("LAB_MAX_PAYLOAD_BYTES", 16 * 1024)
LAB_MAX_ITEMS = env_int("LAB_MAX_ITEMS", 20)
# Events per second one lab may write, on average (bursts up to LAB_MAX_BURST at once).
LAB_PRODUCE_RATE = env_int("LAB_PRODUCE_RATE", 2000)
# Recent events each partition lane keeps on the page.
LAB_LANE_WINDOW = env_int("LAB_LANE_WINDOW", 30)
# A page says when it has drawn a push of records; one that doesn't (no JavaScript) gets the
# next push after this many seconds anyway.
LAB_DRAW_TIMEOUT_SECONDS = float(os.environ.get("LAB_DRAW_TIMEOUT_SECONDS", "1.0"))
# A lab nobody watches any more (page closed, state.json not asked) is still read from Kafka this
# long, so a reload finds its model warm; then its observer stops.
LAB_OBSERVER_GRACE_SECONDS = float(os.environ.get("LAB_OBSERVER_GRACE_SECONDS", "30"))
# Labs at once, in all, and per client address (a classroom's labs count against its own limit).
LAB_MAX_LABS = env_int("LAB_MAX_LABS", 200)
LAB_MAX_LABS_PER_ADDRESS = env_int("LAB_MAX_LABS_PER_ADDRESS", 10)
# Proxies whose X-Forwarded-For names the client; unset, the address is the connection's own.
LAB_TRUSTED_PROXIES = env_list("LAB_TRUSTED_PROXIES", [])
for _entry in LAB_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_entry, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"LAB_TRUSTED_PROXIES: {_entry!r} is not an address or a network") from exc
# A lab nobody used for this long is deleted: processes, topics, group and rows.
LAB_IDLE_EXPIRY_SECONDS = env_int("LAB_IDLE_EXPIRY_SECONDS", 24 * 3600)
# How often the lab runner deletes expired labs (and marks labs with a page open as in use).
LAB_HOUSEKEEPING_SECONDS = env_int("LAB_HOUSEKEEPING_SECONDS", 60)
# Threads for views that wait on Kafka, and how many of them one lab may hold at once.
LAB_KAFKA_VIEW_THREADS = env_int("LAB_KAFKA_VIEW_THREADS", 8)
LAB_KAFKA_REQUESTS_PER_LAB = env_int("LAB_KAFKA_REQUESTS_PER_LAB", 2)

# --- Classroom ---------------------------------------------------------------------------
# Learners per classroom: the most an instructor may allow, and what a new classroom offers.
CLASSROOM_MAX_LEARNERS = env_int("CLASSROOM_MAX_LEARNERS", 60)
CLASSROOM_DEFAULT_LEARNERS = env_int("CLASSROOM_DEFAULT_LEARNERS", 30)
# Consumers per learner's lab a new classroom offers (at most LAB_MAX_CONSUMERS).
CLASSROOM_DEFAULT_CONSUMERS_PER_LAB = env_int("CLASSROOM_DEFAULT_CONSUMERS_PER_LAB", 4)
# Classrooms open at once, on the whole site.
CLASSROOM_MAX_OPEN = env_int("CLASSROOM_MAX_OPEN", 10)
# Wrong join or rejoin codes one client address may send in a window before it must wait.
CLASSROOM_JOIN_FAILURES = env_int("CLASSROOM_JOIN_FAILURES", 20)
CLASSROOM_JOIN_WINDOW_SECONDS = env_int("CLASSROOM_JOIN_WINDOW_SECONDS", 600)
# How often the instructor's dashboard redraws the roster at most (seconds).
CLASSROOM_ROSTER_INTERVAL = float(os.environ.get("CLASSROOM_ROSTER_INTERVAL", "0.5"))

# Join attempts are counted here: in Redis when the processes share one (every web process sees
# the same counts), else in this process's memory.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGIN_URL = "classroom:login"
LOGIN_REDIRECT_URL = "classroom:list"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"registry_not_found": {"()": "kafkalab.registry.log_filters.RegistryNotFound"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The registry's 404s are answers its clients expect, not problems (see the filter).
    "loggers": {
        "django.request": {"filters": ["registry_not_found"]},
        # The registry client's HTTP library logs every request at INFO: daphne logs them already.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}
