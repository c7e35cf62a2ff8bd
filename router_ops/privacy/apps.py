from django.apps import AppConfig


class Config(AppConfig):
    name = "router_ops.privacy"
    label = "privacy"
    verbose_name = "Privacy and retention"
