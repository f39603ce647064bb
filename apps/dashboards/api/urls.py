from django.urls import path

from . import views

T = "tenants/<uuid:tenant_id>/dashboards"

urlpatterns = [
    path(f"{T}/", views.DashboardListView.as_view(), name="api-dashboards"),
    path(f"{T}/<uuid:dashboard_id>/", views.DashboardDetailView.as_view(), name="api-dashboard"),
]
