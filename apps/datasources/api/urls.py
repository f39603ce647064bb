from django.urls import path

from . import views

T = "tenants/<uuid:tenant_id>/datasources"

urlpatterns = [
    path("datasource-types/", views.DatasourceTypeListView.as_view(), name="api-datasource-types"),
    path(f"{T}/", views.DatasourceListView.as_view(), name="api-datasources"),
    path(f"{T}/test/", views.ConnectionTestView.as_view(), name="api-datasource-test-unsaved"),
    path(f"{T}/<uuid:datasource_id>/", views.DatasourceDetailView.as_view(), name="api-datasource"),
    path(f"{T}/<uuid:datasource_id>/test/", views.DatasourceTestView.as_view(), name="api-datasource-test"),
]
