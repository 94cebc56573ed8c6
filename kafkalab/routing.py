"""Websocket routes for the whole site."""

from django.urls import path

from kafkalab.cluster.consumers import ClusterConsumer
from kafkalab.labs.consumers import LabConsumer

websocket_urlpatterns = [
    path("ws/cluster/", ClusterConsumer.as_asgi()),
    path("ws/labs/<int:lab_id>/", LabConsumer.as_asgi()),
]
