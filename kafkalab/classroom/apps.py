from django.apps import AppConfig


class ClassroomConfig(AppConfig):
    name = "kafkalab.classroom"
    label = "classroom"
    verbose_name = "Classrooms"
