"""All Kafka I/O lives in this package: client configs, admin calls, producers, the local
cluster manager. Views, services outside it and websocket consumers never import
confluent_kafka themselves."""
