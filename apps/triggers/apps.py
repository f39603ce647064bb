from django.apps import AppConfig


class TriggersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.triggers"
    label = "triggers"
    verbose_name = "Workflow triggers"

    def ready(self) -> None:
        from jetadmin import crypto

        crypto.register_field("triggers.Webhook", "secret_encrypted")  # re-encrypted on key rotation
