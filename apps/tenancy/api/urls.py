from django.urls import path

from . import views

urlpatterns = [
    path("auth/token/", views.AuthTokenView.as_view(), name="api-auth-token"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("permissions/", views.PermissionListView.as_view(), name="api-permissions"),
    path("invites/accept/", views.InviteAcceptView.as_view(), name="api-invite-accept"),
    path("tenants/", views.TenantListView.as_view(), name="api-tenants"),
    path("tenants/<uuid:tenant_id>/", views.TenantDetailView.as_view(), name="api-tenant"),
    path("tenants/<uuid:tenant_id>/members/", views.MemberListView.as_view(), name="api-members"),
    path(
        "tenants/<uuid:tenant_id>/members/<uuid:member_id>/",
        views.MemberDetailView.as_view(),
        name="api-member",
    ),
    path("tenants/<uuid:tenant_id>/roles/", views.RoleListView.as_view(), name="api-roles"),
    path("tenants/<uuid:tenant_id>/roles/<uuid:role_id>/", views.RoleDetailView.as_view(), name="api-role"),
    path("tenants/<uuid:tenant_id>/api-keys/", views.APIKeyListView.as_view(), name="api-api-keys"),
    path(
        "tenants/<uuid:tenant_id>/api-keys/<uuid:key_id>/",
        views.APIKeyDetailView.as_view(),
        name="api-api-key",
    ),
    path("tenants/<uuid:tenant_id>/invites/", views.InviteListView.as_view(), name="api-invites"),
    path(
        "tenants/<uuid:tenant_id>/invites/<uuid:invite_id>/",
        views.InviteDetailView.as_view(),
        name="api-invite",
    ),
    path("tenants/<uuid:tenant_id>/audit-logs/", views.AuditLogListView.as_view(), name="api-audit-logs"),
]
