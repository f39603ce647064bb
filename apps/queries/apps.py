from django.apps import AppConfig


class QueriesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.queries"
    label = "queries"
    verbose_name = "Saved queries"
