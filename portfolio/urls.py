from django.urls import path

from portfolio import views

urlpatterns = [
    path("", views.home, name="home"),
    path("use-cases/", views.UseCaseListView.as_view(), name="usecase-list"),
    path("use-cases/new/", views.UseCaseCreateView.as_view(), name="usecase-create"),
    path("use-cases/export/<str:fmt>/", views.UseCaseExportView.as_view(), name="usecase-export"),
    path("use-cases/import/", views.UseCaseImportView.as_view(), name="usecase-import"),
    path("use-cases/import/confirm/", views.UseCaseImportConfirmView.as_view(), name="usecase-import-confirm"),
    path("use-cases/<int:pk>/", views.UseCaseDetailView.as_view(), name="usecase-detail"),
    path("use-cases/<int:pk>/edit/", views.UseCaseUpdateView.as_view(), name="usecase-update"),
    path("use-cases/<int:pk>/figures/", views.UseCaseFiguresView.as_view(), name="usecase-figures"),
    path("use-cases/<int:pk>/stage/", views.UseCaseMoveView.as_view(), name="usecase-move"),
    path(
        "use-cases/<int:use_case_pk>/deployments/new/", views.DeploymentCreateView.as_view(), name="deployment-create"
    ),
    path("deployments/<int:pk>/edit/", views.DeploymentUpdateView.as_view(), name="deployment-update"),
    path("use-cases/<int:use_case_pk>/pocs/new/", views.ProofOfConceptCreateView.as_view(), name="poc-create"),
    path("pocs/<int:pk>/edit/", views.ProofOfConceptUpdateView.as_view(), name="poc-update"),
    path("checklist-items/<int:pk>/evidence/", views.ChecklistEvidenceView.as_view(), name="checklistitem-evidence"),
    path(
        "checklist-items/<int:pk>/evidence-file/",
        views.ChecklistEvidenceFileView.as_view(),
        name="checklistitem-evidence-file",
    ),
    path("checklist-items/<int:pk>/waive/", views.ChecklistWaiveView.as_view(), name="checklistitem-waive"),
    path("dashboard/", views.DashboardView.as_view(), name="dashboard"),
    path("dashboard/what-if/", views.WhatIfView.as_view(), name="whatif-run"),
    path("dashboard/recompute/", views.RecomputeStartView.as_view(), name="recompute-start"),
    path("dashboard/recompute/<int:pk>/", views.RecomputeProgressView.as_view(), name="recompute-progress"),
]
