from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Explicit discovery: importing the package registers every built-in node type.
        from importlib import import_module

        from django.conf import settings
        from django.db.models.signals import post_migrate

        from . import journal, nodes  # noqa: F401

        post_migrate.connect(_install_journal_trigger, sender=self)

        from .engine.events import instance_events
        from .streams import on_events

        instance_events.connect(on_events, dispatch_uid="workflows.run_streams")  # websockets hear runs

        # Extra node-type modules (plugins, or test nodes that worker processes must know too).
        for module in settings.JETADMIN_NODE_MODULES:
            import_module(module)


def _install_journal_trigger(using: str = "default", **kwargs: object) -> None:
    from .journal import install

    install(using)
