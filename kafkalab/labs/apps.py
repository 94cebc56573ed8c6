from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "kafkalab.labs"
    label = "labs"
    verbose_name = "Labs"
