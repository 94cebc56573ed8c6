"""Forms of OrderService's contract and the registry panel."""

from __future__ import annotations

from django import forms

from kafkalab.kafka.contracts import CHANGES, Encoding


class EncodingForm(forms.Form):
    encoding = forms.ChoiceField(label="Encoding", choices=[(e.value, e.label) for e in Encoding])

    def encoding_choice(self) -> Encoding:
        return Encoding(self.cleaned_data["encoding"])


class SchemaForm(forms.Form):
    """The editor's schema, or a one-click change to the current one. Its size is bounded by the
    contract itself (64 KiB), which says so in words."""

    schema = forms.CharField(label="Writer schema", required=False, strip=False, widget=forms.Textarea)
    change = forms.ChoiceField(required=False, choices=[("", "")] + [(c.name, c.title) for c in CHANGES.values()])

    def clean(self) -> dict:
        cleaned = super().clean()
        if not cleaned.get("change") and not (cleaned.get("schema") or "").strip():
            raise forms.ValidationError("Write a schema in the editor first, or pick a change.")
        return cleaned


class CompatibilityForm(forms.Form):
    # Free text rather than a choice: an unknown level gets the service's message, which lists the seven.
    level = forms.CharField(label="Compatibility", max_length=100)


class DiffForm(forms.Form):
    a = forms.IntegerField(min_value=1, required=False)
    b = forms.IntegerField(min_value=1, required=False)
