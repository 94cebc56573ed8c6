from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "kafkalab.registry"
    label = "registry"
    verbose_name = "Schema registry"
