from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

from kafkalab.checks import check_secret_key


class ClusterConfig(AppConfig):
    name = "kafkalab.cluster"
    label = "cluster"
    verbose_name = "Kafka cluster"

    def ready(self) -> None:
        # runworker, runserver, migrate and the like refuse to run without a key (debug off).
        checks.register(check_secret_key, checks.Tags.security)
