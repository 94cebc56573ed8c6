from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "kafkalab.cluster"
    label = "cluster"
    verbose_name = "Kafka cluster"
