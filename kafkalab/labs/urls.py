from django.urls import path

from kafkalab.labs import views

app_name = "labs"

urlpatterns = [
    path("", views.home, name="home"),
    path("labs/<int:lab_id>/", views.lab_detail, name="detail"),
    path("labs/<int:lab_id>/state.json", views.lab_state, name="state"),
    path("labs/<int:lab_id>/reset/", views.lab_reset, name="reset"),
    path("labs/<int:lab_id>/orders/", views.order_create, name="order-create"),
    path("labs/<int:lab_id>/orders/burst/", views.orders_burst, name="orders-burst"),
    path("labs/<int:lab_id>/orders/advance/", views.order_advance, name="order-advance"),
    path("labs/<int:lab_id>/partitions/", views.partitions_change, name="partitions"),
    path("labs/<int:lab_id>/events/<int:partition>/<int:offset>/", views.event_detail, name="event"),
    path("labs/<int:lab_id>/consumers/", views.consumer_add, name="consumer-add"),
    *[
        path(
            f"labs/<int:lab_id>/consumers/<slug:name>/{action}/",
            views.consumer_action,
            {"action": action},
            name=f"consumer-{action}",
        )
        for action in ("stop", "kill", "restart")
    ],
]
