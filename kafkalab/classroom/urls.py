from django.contrib.auth.views import LogoutView
from django.urls import path

from kafkalab.classroom import views

app_name = "classroom"

urlpatterns = [
    path("join/", views.join, name="join"),
    path("join/<str:code>/", views.join_classroom, name="join-classroom"),
    path("instructor/login/", views.LoginView.as_view(), name="login"),
    path("instructor/logout/", LogoutView.as_view(next_page="classroom:login"), name="logout"),
    path("classrooms/", views.classroom_list, name="list"),
    path("classrooms/<int:classroom_id>/", views.dashboard, name="dashboard"),
    path("classrooms/<int:classroom_id>/projector/", views.projector, name="projector"),
    path("classrooms/<int:classroom_id>/progress.csv", views.progress_csv, name="progress-csv"),
    path("classrooms/<int:classroom_id>/broadcast/", views.broadcast, name="broadcast"),
    path("classrooms/<int:classroom_id>/follow/", views.follow, name="follow"),
    path("classrooms/<int:classroom_id>/my-lab/", views.my_lab, name="my-lab"),
    path("classrooms/<int:classroom_id>/close/", views.close, name="close"),
    path(
        "classrooms/<int:classroom_id>/learners/<int:learner_id>/reset/",
        views.learner_reset,
        name="learner-reset",
    ),
]
