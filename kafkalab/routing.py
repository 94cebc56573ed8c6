"""Websocket routes for the whole site."""

from django.urls import path

from kafkalab.cluster.consumers import ClusterConsumer

websocket_urlpatterns = [
    path("ws/cluster/", ClusterConsumer.as_asgi()),
]
