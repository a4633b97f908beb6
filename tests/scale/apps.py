from django.apps import AppConfig


class ScaleConfig(AppConfig):
    name = "tests.scale"
    label = "scale"
