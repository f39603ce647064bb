from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Explicit discovery: importing the package registers every built-in node type.
        from . import nodes  # noqa: F401
