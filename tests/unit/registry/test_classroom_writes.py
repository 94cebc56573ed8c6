"""In a classroom the registry's writes need the lab's own credentials; reads stay open."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from kafkalab.registry.credentials import lab_credentials, lab_of_basic_auth, lab_user_info
from kafkalab.registry.errors import CredentialsRequired
from kafkalab.registry.permissions import lab_subjects_only


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request(authorization: str | None = None):
    headers = {"Authorization": authorization} if authorization else {}
    request = RequestFactory().post("/registry/subjects/x/versions", headers=headers)
    request.user = AnonymousUser()
    return request


def test_a_lab_may_write_only_its_own_subjects() -> None:
    request = _request(_basic(*lab_credentials(7)))
    assert lab_subjects_only(request, "lab-7.orders-value")
    assert not lab_subjects_only(request, "lab-8.orders-value")
    assert not lab_subjects_only(request, "lab-70.orders-value")
    assert not lab_subjects_only(request, None), "the global config is the instructor's"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer abc", _basic("lab-7", "wrong"), _basic("lab-7", ""), "Basic !!!", _basic("admin", "x")],
)
def test_writes_without_valid_credentials_are_refused(authorization) -> None:
    with pytest.raises(CredentialsRequired):
        lab_subjects_only(_request(authorization), "lab-7.orders-value")


def test_one_labs_password_does_not_open_another() -> None:
    user, password = lab_credentials(7)
    assert lab_of_basic_auth(_basic(user, password)) == 7
    assert lab_of_basic_auth(_basic("lab-8", password)) is None
    assert lab_user_info(7) == f"{user}:{password}"


def test_the_instructor_writes_anything(django_user_model, db) -> None:
    request = _request()
    request.user = django_user_model(username="teacher", is_staff=True)
    assert lab_subjects_only(request, "lab-3.orders-value")
    assert lab_subjects_only(request, None)


def test_the_rest_api_answers_401_with_a_challenge_and_403_for_another_labs_subject(client, settings, db) -> None:
    settings.SCHEMA_REGISTRY_WRITE_CHECK = "kafkalab.registry.permissions.lab_subjects_only"
    response = client.post("/registry/subjects/lab-7.orders-value/versions", data="{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error_code"] == 40101
    assert response["WWW-Authenticate"].startswith("Basic")
    response = client.post(
        "/registry/subjects/lab-8.orders-value/versions",
        data="{}",
        content_type="application/json",
        headers={"Authorization": _basic(*lab_credentials(7))},
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == 40301
