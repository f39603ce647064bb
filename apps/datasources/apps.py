from django.apps import AppConfig


class DatasourcesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.datasources"
    label = "datasources"
    verbose_name = "Datasources"

    def ready(self) -> None:
        from jetadmin import crypto

        crypto.register_field("datasources.Datasource", "secrets_encrypted")  # re-encrypted on rotation
