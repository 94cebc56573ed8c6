"""What a learner and an instructor may type: names, codes, a classroom's limits, a banner."""

from __future__ import annotations

import pytest

from kafkalab.classroom.forms import BroadcastForm, ClassroomForm, JoinCodeForm, JoinForm


def joined_name(name: str) -> str:
    form = JoinForm(data={"name": name})
    assert form.is_valid(), form.errors
    return form.cleaned_data["name"]


def name_errors(name: str) -> list[str]:
    form = JoinForm(data={"name": name})
    assert not form.is_valid()
    return form.errors["name"]


# --- JoinForm ---------------------------------------------------------------------------------


def test_a_name_has_its_spaces_collapsed():
    assert joined_name("  Ada \t  Lovelace  ") == "Ada Lovelace"


@pytest.mark.parametrize("name", ["Zoë", "李雷", "O'Neil-Smith", "Ada (table 3)", "7"])
def test_a_name_in_any_script_with_punctuation_is_taken(name):
    assert joined_name(name) == name


@pytest.mark.parametrize("name", ["Ada\x1b[31m", "Ada\u200bLovelace", "Ada\u202eecalevol", "Ada\x7f"])
def test_a_name_with_control_or_invisible_characters_is_refused(name):
    assert name_errors(name) == ["Use letters, digits, spaces and punctuation only."]


def test_a_name_with_a_null_character_is_refused():
    # Django's CharField refuses it before clean_name looks.
    assert name_errors("Ada\x00")


@pytest.mark.parametrize("name", ["---", "!!", "._."])
def test_a_name_without_a_letter_or_digit_is_refused(name):
    assert name_errors(name) == ["Your name needs at least one letter or digit."]


def test_a_blank_name_is_refused():
    assert JoinForm(data={"name": "   "}).errors["name"]


def test_a_name_may_be_forty_characters_and_no_more():
    assert joined_name("a" * 40) == "a" * 40
    assert name_errors("a" * 41)


def test_the_rejoin_code_is_optional():
    form = JoinForm(data={"name": "Ada"})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["rejoin_code"] == ""


# --- JoinCodeForm -----------------------------------------------------------------------------


def test_a_classroom_code_is_read_however_it_is_typed():
    form = JoinCodeForm(data={"code": " abc-def "})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["code"] == "ABCDEF"


@pytest.mark.parametrize("code", ["", "  ", "- -"])
def test_a_code_of_only_dashes_and_spaces_is_refused(code):
    form = JoinCodeForm(data={"code": code})

    assert not form.is_valid()
    assert form.errors["code"]


# --- ClassroomForm ----------------------------------------------------------------------------


def classroom_form(**data) -> ClassroomForm:
    return ClassroomForm(data={"name": "Kafka workshop", "max_learners": 30, "max_consumers_per_lab": 4, **data})


def test_a_classroom_within_the_sites_caps_is_taken(settings):
    settings.CLASSROOM_MAX_LEARNERS = 60
    settings.LAB_MAX_CONSUMERS = 8

    form = classroom_form(max_learners=60, max_consumers_per_lab=8)

    assert form.is_valid(), form.errors
    assert (form.cleaned_data["max_learners"], form.cleaned_data["max_consumers_per_lab"]) == (60, 8)


def test_the_learner_cap_follows_the_setting(settings):
    settings.CLASSROOM_MAX_LEARNERS = 12

    assert classroom_form(max_learners=12).is_valid()
    assert classroom_form(max_learners=13).errors["max_learners"]
    assert classroom_form(max_learners=0).errors["max_learners"]
    assert ClassroomForm().fields["max_learners"].help_text == "Up to 12 on this kafkalab."


def test_the_consumer_cap_follows_the_setting(settings):
    settings.LAB_MAX_CONSUMERS = 3

    assert classroom_form(max_consumers_per_lab=3).is_valid()
    assert classroom_form(max_consumers_per_lab=4).errors["max_consumers_per_lab"]
    assert classroom_form(max_consumers_per_lab=0).errors["max_consumers_per_lab"]


def test_the_offered_defaults_never_exceed_the_caps(settings):
    settings.CLASSROOM_DEFAULT_LEARNERS = 30
    settings.CLASSROOM_MAX_LEARNERS = 10
    settings.CLASSROOM_DEFAULT_CONSUMERS_PER_LAB = 4
    settings.LAB_MAX_CONSUMERS = 2

    fields = ClassroomForm().fields

    assert (fields["max_learners"].initial, fields["max_consumers_per_lab"].initial) == (10, 2)


def test_the_offered_defaults_are_the_settings_within_the_caps(settings):
    settings.CLASSROOM_DEFAULT_LEARNERS = 25
    settings.CLASSROOM_MAX_LEARNERS = 60
    settings.CLASSROOM_DEFAULT_CONSUMERS_PER_LAB = 3
    settings.LAB_MAX_CONSUMERS = 8

    fields = ClassroomForm().fields

    assert (fields["max_learners"].initial, fields["max_consumers_per_lab"].initial) == (25, 3)


# --- BroadcastForm ----------------------------------------------------------------------------


def test_a_banner_has_its_whitespace_collapsed():
    form = BroadcastForm(data={"message": "  Break \n until\t10:30  "})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["message"] == "Break until 10:30"


@pytest.mark.parametrize("message", ["", "   "])
def test_an_empty_banner_takes_the_banner_down(message):
    form = BroadcastForm(data={"message": message})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["message"] == ""


def test_a_banner_is_at_most_280_characters():
    assert BroadcastForm(data={"message": "a" * 280}).is_valid()
    assert not BroadcastForm(data={"message": "a" * 281}).is_valid()
