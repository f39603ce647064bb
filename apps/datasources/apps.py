from django.apps import AppConfig


class DatasourcesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.datasources"
    label = "datasources"
    verbose_name = "Datasources"
