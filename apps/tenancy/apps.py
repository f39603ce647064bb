from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "apps.tenancy"
    label = "tenancy"
    verbose_name = "Tenancy & access"

    def ready(self) -> None:
        from .api import schema  # noqa: F401 - registers the OpenAPI auth extensions
