"""The billing panel's live part, as owners and observers get it."""

from __future__ import annotations

from django.template.loader import render_to_string

from kafkalab.kafka.billing_config import BillingConfig, BillingMode
from kafkalab.kafka.consumer_config import ConsumerStatus
from kafkalab.labs.access import Role
from kafkalab.labs.live_view import Viewer
from kafkalab.runner.live import LabLive


def billing_model() -> dict:
    live = LabLive(7)
    older = live.billing_instance("b1", BillingConfig(processing_delay_ms=300))
    older.transactional_id, older.status, older.fenced = "lab-7.billing-service.b1", ConsumerStatus.STOPPED, True
    older.last_error = "Fenced: b2 took its transactional.id"
    twin = live.billing_instance("b2", BillingConfig())
    twin.transactional_id, twin.twin_of, twin.status = "lab-7.billing-service.b1", "b1", ConsumerStatus.RUNNING
    live.billing_instance("b3", BillingConfig(mode=BillingMode.AT_LEAST_ONCE)).status = ConsumerStatus.RUNNING
    return {"invoices": 12, "duplicates": 2, "orders_invoiced": 10, "instances": live.billing_data()}


def render(role: Role) -> str:
    viewer = Viewer(lab_id=7, role=role)
    context = {"viewer": viewer, "lab_id": 7, "oob": True, "billing": billing_model()}
    return render_to_string("labs/panels/billing.html", context)


def test_the_owner_sees_counts_fenced_cards_and_a_twin_button_on_exactly_once_only() -> None:
    html = render(Role.OWNER)
    assert 'id="billing" hx-swap-oob="true"' in html
    assert 'data-invoices="12"' in html and 'data-invoice-duplicates="2"' in html
    assert 'data-billing="b1" data-mode="exactly-once" data-status="stopped" data-fenced="true"' in html
    assert ">fenced<" in html and "Fenced: b2 took" in html
    assert "twin of b1" in html
    assert html.count('data-control="billing-twin"') == 1  # b2 only: b1 is stopped, b3 has no transactional.id
    assert 'data-control="billing-restart"' in html


def test_an_observer_gets_no_button() -> None:
    html = render(Role.OBSERVER)
    assert ">fenced<" in html
    assert "<form" not in html and "<button" not in html
