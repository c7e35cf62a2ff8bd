from __future__ import annotations

from django import forms

from router_ops.alerts.models import validate_window


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=100, initial="Segment regret")
    webhook_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", help_text='Slack-compatible: receives {"text": …}'
    )
    email_recipients = forms.CharField(required=False, help_text="Comma-separated addresses")
    window = forms.ChoiceField(choices=[("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days")], initial="24h")

    def clean_email_recipients(self) -> list[str]:
        raw = [part.strip() for part in self.cleaned_data["email_recipients"].split(",") if part.strip()]
        validator = forms.EmailField()
        return [validator.clean(address) for address in raw]

    def clean_window(self) -> str:
        validate_window(self.cleaned_data["window"])
        return self.cleaned_data["window"]

    def clean(self):
        data = super().clean()
        if not data.get("webhook_url") and not data.get("email_recipients") and not self.errors:
            raise forms.ValidationError("Give a webhook URL, email recipients, or both.")
        return data
