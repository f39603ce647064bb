"""URL map: the API under /api/v1/, its schema and docs, server-rendered pages, health probes."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.tenancy import views as tenancy_views
from apps.workflows import views as workflow_views
from jetadmin import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("api/v1/", include("apps.tenancy.api.urls")),
    path("api/v1/", include("apps.workflows.api.urls")),
    path("api/v1/", include("apps.triggers.api.urls")),
    path("api/v1/", include("apps.datasources.api.urls")),
    path("api/v1/", include("apps.queries.api.urls")),
    path("api/v1/", include("apps.widgets.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("invites/<str:token>/", tenancy_views.invite_accept_page, name="invite-accept"),
    path("t/<uuid:tenant_id>/", tenancy_views.tenant_home, name="tenant-home"),
    path("t/<uuid:tenant_id>/runs/<uuid:instance_id>/", workflow_views.run_page, name="run-page"),
    path("", tenancy_views.home, name="home"),
]

handler400 = "jetadmin.views.bad_request"
handler403 = "jetadmin.views.permission_denied"
handler404 = "jetadmin.views.page_not_found"
handler500 = "jetadmin.views.server_error"
