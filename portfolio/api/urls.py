from django.urls import path
from rest_framework.routers import SimpleRouter

from portfolio.api import views

router = SimpleRouter()
router.register("teams", views.TeamViewSet, basename="team")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("use-cases", views.UseCaseViewSet, basename="use-case")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("pocs", views.ProofOfConceptViewSet, basename="poc")
router.register("cost-snapshots", views.CostSnapshotViewSet, basename="cost-snapshot")
router.register("snapshots", views.PortfolioSnapshotViewSet, basename="snapshot")
router.register("jobs", views.RecomputeJobViewSet, basename="job")
router.register("checklist-items", views.ChecklistItemViewSet, basename="checklist-item")
router.register("webhooks", views.WebhookSubscriptionViewSet, basename="webhook")
router.register("webhook-deliveries", views.WebhookDeliveryViewSet, basename="webhook-delivery")

urlpatterns = [
    path("use-cases/bulk/", views.UseCaseBulkUpsertView.as_view(), name="use-case-bulk"),
    path(
        "use-cases/by-external-id/<slug:team_slug>/<str:external_id>/",
        views.UseCaseByExternalIdView.as_view(),
        name="use-case-by-external-id",
    ),
    path("portfolio/summary/", views.PortfolioSummaryView.as_view(), name="portfolio-summary"),
    path("portfolio/what-if/", views.WhatIfView.as_view(), name="portfolio-what-if"),
    *router.urls,
]
