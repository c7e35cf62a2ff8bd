from django.apps import AppConfig


class Config(AppConfig):
    name = "segments"
    label = "segments"
