from django.apps import AppConfig


class Config(AppConfig):
    name = "router_ops.applications"
    label = "applications"
