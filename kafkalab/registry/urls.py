from django.urls import path, re_path

from kafkalab.registry import views

app_name = "registry"

urlpatterns = [
    path("", views.root, name="root"),
    path("subjects", views.subjects, name="subjects"),
    path("subjects/<str:subject>", views.subject, name="subject"),
    path("subjects/<str:subject>/versions", views.subject_versions, name="subject-versions"),
    path("subjects/<str:subject>/versions/<str:version>", views.subject_version, name="subject-version"),
    path("subjects/<str:subject>/versions/<str:version>/schema", views.subject_version_schema),
    path("schemas/types", views.schema_types),
    path("schemas/ids/<str:schema_id>", views.schema_by_id, name="schema"),
    path("schemas/ids/<str:schema_id>/schema", views.schema_by_id_raw),
    path("schemas/ids/<str:schema_id>/versions", views.schema_id_versions),
    path("schemas/ids/<str:schema_id>/subjects", views.schema_id_subjects),
    path("config", views.config, name="config"),
    path("config/<str:subject>", views.config, name="subject-config"),
    path("compatibility/subjects/<str:subject>/versions", views.compatibility),
    path("compatibility/subjects/<str:subject>/versions/<str:version>", views.compatibility),
    # Anything else under /registry/ answers as Confluent's does, in JSON, not with an HTML page.
    re_path(r"^(?P<rest>.*)$", views.not_found),
]
