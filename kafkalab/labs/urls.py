from django.urls import path

import kafkalab.labs.converters  # noqa: F401 (registers lab_id, partition, offset)
from kafkalab.labs import billing_views, contract_views, transaction_views, views

app_name = "labs"

urlpatterns = [
    path("", views.home, name="home"),
    path("labs/", views.lab_start, name="start"),
    path("share/<str:token>/", views.lab_shared, name="shared"),
    path("labs/<lab_id:lab_id>/", views.lab_detail, name="detail"),
    path("labs/<lab_id:lab_id>/watch/", views.lab_watch, name="watch"),
    path("labs/<lab_id:lab_id>/state.json", views.lab_state, name="state"),
    path("labs/<lab_id:lab_id>/reset/", views.lab_reset, name="reset"),
    path("labs/<lab_id:lab_id>/share/", views.lab_share, name="share"),
    path("labs/<lab_id:lab_id>/share/revoke/", views.lab_unshare, name="unshare"),
    path("labs/<lab_id:lab_id>/orders/", views.order_create, name="order-create"),
    path("labs/<lab_id:lab_id>/orders/burst/", views.orders_burst, name="orders-burst"),
    path("labs/<lab_id:lab_id>/orders/advance/", views.order_advance, name="order-advance"),
    *[
        path(
            f"labs/<lab_id:lab_id>/transaction/{action}/",
            transaction_views.transaction_action,
            {"action": action},
            name=f"transaction-{action}",
        )
        for action in transaction_views.TRANSACTION_ACTIONS
    ],
    path(
        "labs/<lab_id:lab_id>/transaction/timeout/", transaction_views.transaction_timeout, name="transaction-timeout"
    ),
    path("labs/<lab_id:lab_id>/partitions/", views.partitions_change, name="partitions"),
    path("labs/<lab_id:lab_id>/events/<partition:partition>/<offset:offset>/", views.event_detail, name="event"),
    path("labs/<lab_id:lab_id>/consumers/", views.consumer_add, name="consumer-add"),
    *[
        path(
            f"labs/<lab_id:lab_id>/consumers/<slug:name>/{action}/",
            views.consumer_action,
            {"action": action},
            name=f"consumer-{action}",
        )
        for action in ("stop", "kill", "restart")
    ],
    path("labs/<lab_id:lab_id>/dlq/replay/", views.dlq_replay, name="dlq-replay"),
    path("labs/<lab_id:lab_id>/billing/", billing_views.billing_add, name="billing-add"),
    path("labs/<lab_id:lab_id>/billing/<slug:name>/twin/", billing_views.billing_twin, name="billing-twin"),
    *[
        path(
            f"labs/<lab_id:lab_id>/billing/<slug:name>/{action}/",
            billing_views.billing_action,
            {"action": action},
            name=f"billing-{action}",
        )
        for action in billing_views.BILLING_ACTIONS
    ],
    path("labs/<lab_id:lab_id>/contract/encoding/", contract_views.contract_encoding, name="contract-encoding"),
    path("labs/<lab_id:lab_id>/contract/check/", contract_views.contract_check, name="contract-check"),
    path("labs/<lab_id:lab_id>/contract/use/", contract_views.contract_use, name="contract-use"),
    path("labs/<lab_id:lab_id>/contract/registry/", contract_views.registry_subject, name="contract-registry"),
    path(
        "labs/<lab_id:lab_id>/contract/compatibility/", contract_views.compatibility_set, name="contract-compatibility"
    ),
]
