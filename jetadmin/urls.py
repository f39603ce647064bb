"""URL map: the API under /api/v1/, its schema and docs, server-rendered pages, health probes."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerView

from apps.dashboards import views as dashboard_views
from apps.datasources import views as datasource_views
from apps.queries import views as query_views
from apps.tenancy import views as tenancy_views
from apps.triggers import views as trigger_views
from apps.workflows import views as workflow_views
from jetadmin import home, ops, views

T = "t/<uuid:tenant_id>"
pages = [
    path(f"{T}/", home.tenant_home, name="tenant-home"),
    path(f"{T}/dashboards/", dashboard_views.dashboard_list, name="dashboard-list"),
    path(f"{T}/dashboards/new/", dashboard_views.dashboard_new, name="dashboard-new"),
    path(f"{T}/dashboards/<uuid:dashboard_id>/", dashboard_views.dashboard_detail, name="dashboard-detail"),
    path(f"{T}/dashboards/<uuid:dashboard_id>/edit/", dashboard_views.dashboard_edit, name="dashboard-edit"),
    path(f"{T}/dashboards/<uuid:dashboard_id>/shares/", dashboard_views.share_add, name="dashboard-share"),
    path(
        f"{T}/dashboards/<uuid:dashboard_id>/shares/<uuid:link_id>/revoke/",
        dashboard_views.share_revoke,
        name="dashboard-share-revoke",
    ),
    path(f"{T}/widgets/<uuid:widget_id>/export/", dashboard_views.widget_export, name="widget-export"),
    path(f"{T}/datasources/", datasource_views.datasource_list, name="datasource-list"),
    path(f"{T}/datasources/new/", datasource_views.datasource_new, name="datasource-new"),
    path(f"{T}/datasources/test/", datasource_views.datasource_test_unsaved, name="datasource-test-unsaved"),
    path(
        f"{T}/datasources/<uuid:datasource_id>/", datasource_views.datasource_detail, name="datasource-detail"
    ),
    path(
        f"{T}/datasources/<uuid:datasource_id>/test/",
        datasource_views.datasource_test_saved,
        name="datasource-test",
    ),
    path(
        f"{T}/datasources/<uuid:datasource_id>/delete/",
        datasource_views.datasource_delete,
        name="datasource-delete",
    ),
    path(f"{T}/queries/", query_views.query_list, name="query-list"),
    path(f"{T}/queries/new/", query_views.query_new, name="query-new"),
    path(f"{T}/queries/run/", query_views.query_run, name="query-run"),
    path(f"{T}/queries/params/", query_views.query_params, name="query-params"),
    path(f"{T}/queries/schema/", query_views.datasource_schema, name="query-schema"),
    path(f"{T}/queries/<uuid:query_id>/", query_views.query_detail, name="query-detail"),
    path(f"{T}/queries/<uuid:query_id>/delete/", query_views.query_delete, name="query-delete"),
    path(f"{T}/workflows/", workflow_views.workflow_list, name="workflow-list"),
    path(f"{T}/workflows/new/", workflow_views.workflow_new, name="workflow-new"),
    path(f"{T}/workflows/<uuid:workflow_id>/", workflow_views.workflow_detail, name="workflow-detail"),
    path(f"{T}/workflows/<uuid:workflow_id>/run/", workflow_views.workflow_run, name="workflow-run"),
    path(f"{T}/workflows/<uuid:workflow_id>/schedules/", trigger_views.schedule_add, name="schedule-add"),
    path(
        f"{T}/workflows/<uuid:workflow_id>/schedules/<uuid:schedule_id>/",
        trigger_views.schedule_change,
        name="schedule-change",
    ),
    path(f"{T}/workflows/<uuid:workflow_id>/webhooks/", trigger_views.webhook_add, name="webhook-add"),
    path(
        f"{T}/workflows/<uuid:workflow_id>/webhooks/<uuid:webhook_id>/revoke/",
        trigger_views.webhook_revoke,
        name="webhook-revoke",
    ),
    path(f"{T}/runs/", workflow_views.run_list, name="run-list"),
    path(f"{T}/inbox/", workflow_views.inbox_page, name="inbox"),
    path(f"{T}/runs/<uuid:instance_id>/", workflow_views.run_page, name="run-page"),
    path(f"{T}/runs/<uuid:instance_id>/<str:action>/", workflow_views.run_action, name="run-action"),
    path(f"{T}/settings/", tenancy_views.settings_page, name="settings"),
    path(f"{T}/settings/audit/", tenancy_views.audit_page, name="audit"),
    path(f"{T}/settings/invites/", tenancy_views.settings_invite, name="settings-invite"),
    path(
        f"{T}/settings/invites/<uuid:invite_id>/revoke/",
        tenancy_views.settings_invite_revoke,
        name="settings-invite-revoke",
    ),
    path(f"{T}/settings/members/<uuid:member_id>/", tenancy_views.settings_member, name="settings-member"),
    path(f"{T}/settings/roles/", tenancy_views.settings_role_new, name="settings-role-new"),
    path(f"{T}/settings/api-keys/", tenancy_views.settings_api_key_new, name="settings-api-key-new"),
    path(
        f"{T}/settings/api-keys/<uuid:key_id>/revoke/",
        tenancy_views.settings_api_key_revoke,
        name="settings-api-key-revoke",
    ),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("ops/", ops.ops_page, name="ops"),
    path("ops/body/", ops.ops_body, name="ops-body"),
    path("api/v1/", include("apps.tenancy.api.urls")),
    path("api/v1/", include("apps.workflows.api.urls")),
    path("api/v1/", include("apps.triggers.api.urls")),
    path("api/v1/", include("apps.datasources.api.urls")),
    path("api/v1/", include("apps.queries.api.urls")),
    path("api/v1/", include("apps.widgets.api.urls")),
    path("api/v1/", include("apps.dashboards.api.urls")),
    path("api/schema/", views.SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("account/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "account/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "account/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"
    ),
    path("invites/<str:token>/", tenancy_views.invite_accept_page, name="invite-accept"),
    path("share/<str:token>/", dashboard_views.dashboard_shared, name="dashboard-shared"),
    *pages,
    path("", tenancy_views.home, name="home"),
]

handler400 = "jetadmin.views.bad_request"
handler403 = "jetadmin.views.permission_denied"
handler404 = "jetadmin.views.page_not_found"
handler500 = "jetadmin.views.server_error"
