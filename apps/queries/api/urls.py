from django.urls import path

from . import views

T = "tenants/<uuid:tenant_id>/queries"

urlpatterns = [
    path(f"{T}/", views.QueryListView.as_view(), name="api-queries"),
    path(f"{T}/test/", views.QueryTestView.as_view(), name="api-query-test"),
    path(f"{T}/<uuid:query_id>/", views.QueryDetailView.as_view(), name="api-query"),
    path(f"{T}/<uuid:query_id>/run/", views.QueryRunView.as_view(), name="api-query-run"),
]
