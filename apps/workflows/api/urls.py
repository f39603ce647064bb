from django.urls import path

from . import views

T = "tenants/<uuid:tenant_id>/workflows"

urlpatterns = [
    path("node-types/", views.NodeTypeListView.as_view(), name="api-node-types"),
    path(f"{T}/", views.WorkflowListView.as_view(), name="api-workflows"),
    path(f"{T}/validate/", views.WorkflowValidateView.as_view(), name="api-workflow-validate"),
    path(f"{T}/test/", views.WorkflowTestView.as_view(), name="api-workflow-test"),
    path(f"{T}/instances/", views.InstanceListView.as_view(), name="api-instances"),
    path(f"{T}/instances/<uuid:instance_id>/", views.InstanceDetailView.as_view(), name="api-instance"),
    path(
        f"{T}/instances/<uuid:instance_id>/events/", views.InstanceEventListView.as_view(), name="api-events"
    ),
    path(
        f"{T}/instances/<uuid:instance_id>/cancel/",
        views.InstanceActionView.as_view(action="cancel"),
        name="api-instance-cancel",
    ),
    path(
        f"{T}/instances/<uuid:instance_id>/retry/",
        views.InstanceActionView.as_view(action="retry"),
        name="api-instance-retry",
    ),
    path(
        f"{T}/instances/<uuid:instance_id>/resume/",
        views.InstanceActionView.as_view(action="resume"),
        name="api-instance-resume",
    ),
    path(
        f"{T}/instances/<uuid:instance_id>/input/",
        views.InstanceInputView.as_view(),
        name="api-instance-input",
    ),
    path(
        f"{T}/instances/<uuid:instance_id>/nodes/<str:node_id>/output/",
        views.NodeOutputView.as_view(),
        name="api-instance-node-output",
    ),
    path(
        f"{T}/instances/<uuid:instance_id>/nodes/<str:node_id>/cancel/",
        views.NodeCancelView.as_view(),
        name="api-instance-node-cancel",
    ),
    path(
        f"{T}/instances/<uuid:instance_id>/stop/", views.InstanceStopView.as_view(), name="api-instance-stop"
    ),
    path(f"{T}/<uuid:workflow_id>/", views.WorkflowDetailView.as_view(), name="api-workflow"),
    path(
        f"{T}/<uuid:workflow_id>/versions/",
        views.WorkflowVersionListView.as_view(),
        name="api-workflow-versions",
    ),
    path(
        f"{T}/<uuid:workflow_id>/versions/diff/",
        views.WorkflowVersionDiffView.as_view(),
        name="api-workflow-version-diff",
    ),
    path(
        f"{T}/<uuid:workflow_id>/versions/<int:version>/",
        views.WorkflowVersionDetailView.as_view(),
        name="api-workflow-version",
    ),
    path(
        f"{T}/<uuid:workflow_id>/versions/<int:version>/restore/",
        views.WorkflowRestoreView.as_view(),
        name="api-workflow-restore",
    ),
    path(f"{T}/<uuid:workflow_id>/tests/", views.TestCaseListView.as_view(), name="api-workflow-tests"),
    path(
        f"{T}/<uuid:workflow_id>/tests/<uuid:case_id>/",
        views.TestCaseDetailView.as_view(),
        name="api-workflow-test-case",
    ),
    path(
        f"{T}/<uuid:workflow_id>/tests/<uuid:case_id>/run/",
        views.TestCaseRunView.as_view(),
        name="api-workflow-test-case-run",
    ),
    path(
        f"{T}/<uuid:workflow_id>/execute/", views.WorkflowExecuteView.as_view(), name="api-workflow-execute"
    ),
]
