from django.urls import path

from lessons import views

app_name = "lessons"

urlpatterns = [
    path("lessons/", views.catalog, name="catalog"),
    path("lessons/<slug:slug>/", views.lesson_detail, name="detail"),
    path("labs/<lab_id:lab_id>/lessons/<slug:slug>/begin/", views.lesson_begin, name="begin"),
    path("labs/<lab_id:lab_id>/lessons/<slug:slug>/steps/<slug:step_id>/predict/", views.prediction, name="predict"),
]
