"""Websocket routes for the whole site."""

from django.urls import path

import kafkalab.labs.converters  # noqa: F401 (registers lab_id)
from kafkalab.classroom.consumers import DashboardConsumer
from kafkalab.cluster.consumers import ClusterConsumer
from kafkalab.labs.consumers import LabConsumer

websocket_urlpatterns = [
    path("ws/cluster/", ClusterConsumer.as_asgi()),
    path("ws/labs/<lab_id:lab_id>/", LabConsumer.as_asgi()),
    path("ws/classrooms/<int:classroom_id>/", DashboardConsumer.as_asgi()),
]
