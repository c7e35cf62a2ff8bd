from django.apps import AppConfig


class Config(AppConfig):
    name = "router_ops.review"
    label = "review"
