from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("kafkalab.labs.urls")),
    path("", include("lessons.urls")),
    path("", include("kafkalab.classroom.urls")),
    path("cluster/", include("kafkalab.cluster.urls")),
    path("registry/", include("kafkalab.registry.urls")),
    path("admin/", admin.site.urls),
]
