from django.urls import path

from kafkalab.cluster import views

app_name = "cluster"

urlpatterns = [
    path("", views.home, name="home"),
]
