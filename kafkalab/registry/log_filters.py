"""Keep the registry's expected answers out of the log.

Confluent's clients ask for things that may not exist as a matter of course (a subject's own
compatibility level, 40408; a subject before its first version, 40401): the registry answers 404
and Django would log each as a warning. Other 4xx and every 5xx are still logged.
"""

from __future__ import annotations

import logging

from kafkalab.registry import EMBEDDED_PATH


class RegistryNotFound(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        status = getattr(record, "status_code", None)
        path = getattr(request, "path", "")
        return not (status == 404 and path.startswith(EMBEDDED_PATH + "/"))
