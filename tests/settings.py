"""Test settings: the embedded defaults, on a Kafka cluster of the suite's own.

The suite starts that cluster itself (tests/conftest.py) on ports apart from the development
cluster's, so `make test` and `make run` can share a machine.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")

from kafkalab.settings import *  # noqa: E402, F403
from kafkalab.settings import BASE_DIR  # noqa: E402

KAFKA_BOOTSTRAP_SERVERS = ""
KAFKA_LOCAL_DIR = BASE_DIR / ".kafka" / "test"
KAFKA_LOCAL_PORT_BASE = int(os.environ.get("KAFKA_TEST_PORT_BASE", "29092"))
KAFKA_LOCAL_BROKERS = 3
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
LAB_RUNNER_EMBEDDED = True
CLUSTER_WATCH_INTERVAL = 0.5
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
