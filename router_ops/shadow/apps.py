from django.apps import AppConfig


class Config(AppConfig):
    name = "router_ops.shadow"
    label = "shadow"

    def ready(self):
        # The provider adapter is Django-free; the URL allowlist (settings) is plugged in here.
        from router_ops.applications.ssrf import base_url_check
        from router_ops.shadow.providers import openai_chat

        openai_chat.url_check = base_url_check
