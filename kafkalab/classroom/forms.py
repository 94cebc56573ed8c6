from __future__ import annotations

import unicodedata

from django import forms
from django.conf import settings

from kafkalab.classroom import codes


class ClassroomForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=80, help_text="What learners see when they join, e.g. “Kafka workshop, Tuesday”."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Built here: the bounds are settings, which tests and deployments change.
        self.fields["max_learners"] = forms.IntegerField(
            label="Learners at most",
            min_value=1,
            max_value=settings.CLASSROOM_MAX_LEARNERS,
            initial=min(settings.CLASSROOM_DEFAULT_LEARNERS, settings.CLASSROOM_MAX_LEARNERS),
            help_text=f"Up to {settings.CLASSROOM_MAX_LEARNERS} on this kafkalab.",
        )
        self.fields["max_consumers_per_lab"] = forms.IntegerField(
            label="Consumers per lab at most",
            min_value=1,
            max_value=settings.LAB_MAX_CONSUMERS,
            initial=min(settings.CLASSROOM_DEFAULT_CONSUMERS_PER_LAB, settings.LAB_MAX_CONSUMERS),
            help_text=f"Each is a real process; up to {settings.LAB_MAX_CONSUMERS}.",
        )


class JoinCodeForm(forms.Form):
    code = forms.CharField(label="Classroom code", max_length=20, help_text="The code on the instructor's screen.")

    def clean_code(self) -> str:
        code = codes.normalise(self.cleaned_data["code"])
        if not code:
            raise forms.ValidationError("Type the code shown on the instructor's screen.")
        return code


class JoinForm(forms.Form):
    name = forms.CharField(label="Your name", max_length=40, help_text="Shown to your instructor. No password needed.")
    rejoin_code = forms.CharField(
        label="Rejoin code (only to come back)",
        max_length=20,
        required=False,
        help_text="Joined before in another browser? Enter the rejoin code you were shown.",
    )

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if any(unicodedata.category(ch).startswith("C") for ch in name):
            raise forms.ValidationError("Use letters, digits, spaces and punctuation only.")
        if not any(ch.isalnum() for ch in name):
            raise forms.ValidationError("Your name needs at least one letter or digit.")
        return name


class BroadcastForm(forms.Form):
    message = forms.CharField(
        label="Message to every learner",
        max_length=280,
        required=False,
        help_text="Shown as a banner on every learner's lab. Send it empty to take the banner down.",
    )

    def clean_message(self) -> str:
        return " ".join(self.cleaned_data["message"].split())


class CloseForm(forms.Form):
    confirm = forms.BooleanField(
        label="Yes: stop every lab of this classroom and delete its topics.",
        error_messages={"required": "Tick the box to confirm: closing deletes every learner's lab."},
    )
