"""One harness for the tests and the benchmarks: kafkalab under daphne (`server`), a PostgreSQL of
their own (`postgres`), Chromium as this machine runs it (`browser`), and a learner opening a lab,
over HTTP (`http_browser`) or in the page (`lab_page`)."""
