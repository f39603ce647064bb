from django.urls import path

from . import views

T = "tenants/<uuid:tenant_id>/widgets"

urlpatterns = [
    path("widget-types/", views.WidgetTypeListView.as_view(), name="api-widget-types"),
    path(f"{T}/", views.WidgetListView.as_view(), name="api-widgets"),
    path(f"{T}/<uuid:widget_id>/", views.WidgetDetailView.as_view(), name="api-widget"),
    path(f"{T}/<uuid:widget_id>/data/", views.WidgetDataView.as_view(), name="api-widget-data"),
    path(f"{T}/<uuid:widget_id>/export/", views.WidgetExportView.as_view(), name="api-widget-export"),
]
