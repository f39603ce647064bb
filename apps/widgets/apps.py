from django.apps import AppConfig


class WidgetsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.widgets"
    label = "widgets"
    verbose_name = "Widgets"

    def ready(self) -> None:
        from apps.widgets import bridge
        from apps.workflows.engine import events

        events.instance_events.connect(bridge.on_events, dispatch_uid="widgets.bridge")
