from django.urls import path

from . import views

W = "tenants/<uuid:tenant_id>/workflows/<uuid:workflow_id>"

urlpatterns = [
    path(f"{W}/schedules/", views.ScheduleListView.as_view(), name="api-schedules"),
    path(f"{W}/schedules/<uuid:schedule_id>/", views.ScheduleDetailView.as_view(), name="api-schedule"),
    path(f"{W}/webhooks/", views.WebhookListView.as_view(), name="api-webhooks"),
    path(f"{W}/webhooks/<uuid:webhook_id>/", views.WebhookDetailView.as_view(), name="api-webhook"),
    path("hooks/<str:token>/", views.HookView.as_view(), name="api-hook"),
]
