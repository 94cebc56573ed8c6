"""The lesson walks run on the consumer-group tests' server and labs (real daphne, real processes)."""

from tests.integration.consumer_groups.conftest import (  # noqa: F401 (fixtures)
    group,
    lab,
    lab_server,
    make_server,
    no_consumer_left,
    open_lab,
    page,
)
