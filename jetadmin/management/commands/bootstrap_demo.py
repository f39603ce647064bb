"""Create the demo tenant, its admin user and the demo data of jetadmin/demo.py (idempotent), and
print how to log in."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from apps.tenancy import services
from apps.tenancy.models import Membership, User
from jetadmin import demo

DEMO_TENANT = "Demo"


class Command(BaseCommand):
    help = "Create the demo tenant, an admin user and demo data. Safe to run again."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="jetadmin-demo")
        parser.add_argument("--email", default="admin@example.com")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Base URL to print.")

    @transaction.atomic
    def handle(self, *args: Any, **opts: Any) -> None:
        user, created = User.objects.get_or_create(
            username=opts["username"],
            defaults={"email": opts["email"], "is_staff": True, "is_superuser": True},
        )
        if created:
            user.set_password(opts["password"])
            user.save()
        membership = (
            Membership.objects.filter(user=user, tenant__name=DEMO_TENANT).select_related("tenant").first()
        )
        if membership is None:
            tenant = services.tenant_create(actor=services.Actor(user=user), name=DEMO_TENANT)
        else:
            tenant = membership.tenant
        report = demo.ensure_sales_demo(actor=services.Actor(user=user), tenant=tenant)
        cases = demo.ensure_demo_test_cases(actor=services.Actor(user=user), workflow=report)
        widgets, dashboard = demo.ensure_dashboard_demo(
            actor=services.Actor(user=user), tenant=tenant, workflow=report
        )
        url = opts["url"].rstrip("/")
        password = opts["password"] + ("" if created else "  (as first set; this run did not change it)")
        self.stdout.write(
            self.style.SUCCESS("jetadmin demo is ready.\n")
            + f"  Open      {url}/login/\n"
            + f"  Username  {user.username}\n"
            + f"  Password  {password}\n"
            + f"  Tenant    {tenant.name} ({url}/t/{tenant.id}/)\n"
            + f"  API docs  {url}/api/docs/   Admin  {url}/admin/\n"
            + f'  Demo      workflow "{report.name}" ({report.id}): run it with {{"since": "2026-01-01"}}\n'
            + f"  Tests     {len(cases)} test cases of the report: manage.py test_workflows\n"
            + f"  Widgets   {', '.join(w.name for w in widgets)} (their data: POST …/widgets/<id>/data/)\n"
            + f'  Dashboard "{dashboard.name}" ({url}/t/{tenant.id}/dashboards/{dashboard.id}/)\n'
        )
