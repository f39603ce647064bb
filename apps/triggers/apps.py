from django.apps import AppConfig


class TriggersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.triggers"
    label = "triggers"
    verbose_name = "Workflow triggers"
