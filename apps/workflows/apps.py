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
        from .inbox import on_events as tell_approvers

        instance_events.connect(tell_approvers, dispatch_uid="workflows.inbox")  # approvers get an email
        from .observe import on_events as count

        instance_events.connect(count, dispatch_uid="workflows.metrics")  # runs and nodes in /metrics

        from apps.tenancy.services import SETTING_CHECKS

        from .alerts import check as check_on_failure

        SETTING_CHECKS["on_failure"] = check_on_failure  # the tenant's failure alert names a workflow

        # Extra node-type modules (plugins, or test nodes that worker processes must know too).
        for module in settings.JETADMIN_NODE_MODULES:
            import_module(module)


def _install_journal_trigger(using: str = "default", **kwargs: object) -> None:
    from .journal import install

    install(using)
