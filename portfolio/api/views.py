import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import decimals_as_strings
from config.permissions import IsManagerOrReadOnly, IsPortfolioManager, IsTeamLeadOrReadOnly
from portfolio import selectors, services
from portfolio.api.serializers import (
    MAX_BULK_ROWS,
    PortfolioSnapshotSerializer,
    RecomputeJobSerializer,
    BulkUseCaseRowSerializer,
    CostSnapshotSerializer,
    DeploymentSerializer,
    MembershipSerializer,
    ProofOfConceptSerializer,
    SyncUseCaseSerializer,
    TeamSerializer,
    UseCaseSerializer,
    WhatIfSerializer,
)
from portfolio.models import CostSnapshot, Deployment, Membership, ProofOfConcept, UseCase
from pricing.models import currency_validator


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The record changed since you read it: fetch it again and retry."
    default_code = "precondition_failed"


def etag_of(instance) -> str:
    if isinstance(instance, UseCase):
        return f'"{instance.pk}-{instance.version}"'
    digest = hashlib.sha1(f"{instance.pk}:{instance.updated_at.isoformat()}".encode()).hexdigest()[:16]
    return f'"{digest}"'


def check_if_match(request, instance) -> None:
    """412 when the write's ``If-Match`` names another version of the record."""
    header = request.headers.get("If-Match")
    if header and header.strip() != "*" and etag_of(instance) not in [tag.strip() for tag in header.split(",")]:
        raise PreconditionFailed()


class ETagMixin:
    """``ETag`` on detail and write responses; ``If-Match`` honoured on writes."""

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        response = Response(self.get_serializer(instance).data)
        response["ETag"] = etag_of(instance)
        return response

    def written(self, instance, *, created: bool = False) -> Response:
        instance.refresh_from_db()
        response = Response(self.get_serializer(instance).data, status=201 if created else 200)
        response["ETag"] = etag_of(instance)
        return response


class TeamViewSet(viewsets.ModelViewSet):
    """Teams you belong to (every team for portfolio managers); managers create and change them."""

    serializer_class = TeamSerializer
    permission_classes = [IsManagerOrReadOnly]
    lookup_field = "slug"
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "created_at"]

    def get_queryset(self):
        return selectors.visible_teams(user=self.request.user).order_by("name")

    def perform_destroy(self, instance):
        if instance.use_cases.exists():
            raise exceptions.ValidationError({"detail": "The team still has use cases; move or delete them first."})
        instance.delete()


class MembershipFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="team__slug")
    user = filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["team", "user", "role"]


class MembershipViewSet(viewsets.ModelViewSet):
    """Who is in your teams. A team's leads add members, change their role and remove them."""

    serializer_class = MembershipSerializer
    permission_classes = [IsTeamLeadOrReadOnly]
    filterset_class = MembershipFilter
    search_fields = ["user__username", "team__name"]
    ordering_fields = ["created_at", "role"]
    ordering = ["team__name", "user__username", "pk"]

    def get_queryset(self):
        return selectors.visible_memberships(user=self.request.user)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.check_object_permissions(request, Membership(**serializer.validated_data))
        membership = services.add_member(**serializer.validated_data)
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, partial=False, **kwargs):
        membership = self.get_object()
        serializer = self.get_serializer(membership, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        role = serializer.validated_data.get("role", membership.role)
        return Response(self.get_serializer(services.change_role(membership=membership, role=role)).data)

    def destroy(self, request, *args, **kwargs):
        services.remove_member(membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UseCaseFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="team__slug")
    model = filters.CharFilter(field_name="deployments__model__key", distinct=True)
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = UseCase
        fields = ["team", "stage", "category", "risk_tier", "data_classification", "governance_status",
                  "currency", "needs_recompute"]


class UseCaseViewSet(ETagMixin, viewsets.ModelViewSet):
    serializer_class = UseCaseSerializer
    filterset_class = UseCaseFilter
    search_fields = ["title", "description", "external_id"]
    ordering_fields = ["title", "stage", "monthly_cost", "roi_pct", "npv", "updated_at", "created_at"]
    ordering = ["team__name", "title", "pk"]

    def get_queryset(self):
        # Scoping lives in one selector, so no view can forget it.
        return selectors.visible_use_cases(user=self.request.user)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self.written(services.create_use_case(**serializer.validated_data), created=True)

    def update(self, request, *args, partial=False, **kwargs):
        use_case = self.get_object()
        check_if_match(request, use_case)
        serializer = self.get_serializer(use_case, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        try:
            services.update_use_case(use_case=use_case, expected_version=use_case.version, **serializer.validated_data)
        except services.StaleVersion:
            raise PreconditionFailed() from None
        return self.written(use_case)

    def destroy(self, request, *args, **kwargs):
        use_case = self.get_object()
        check_if_match(request, use_case)
        services.delete_use_case(use_case=use_case)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UseCaseByExternalIdView(ETagMixin, APIView):
    """Sync by another system's id: ``PUT`` creates (201) or updates (200) the use case."""

    serializer_class = SyncUseCaseSerializer

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("context", {"request": self.request})
        return SyncUseCaseSerializer(*args, **kwargs)

    def get_team(self, team_slug):
        return get_object_or_404(selectors.visible_teams(user=self.request.user), slug=team_slug)

    def get(self, request, team_slug, external_id):
        use_case = get_object_or_404(
            selectors.visible_use_cases(user=request.user), team__slug=team_slug, external_id=external_id
        )
        response = Response(self.get_serializer(use_case).data)
        response["ETag"] = etag_of(use_case)
        return response

    def put(self, request, team_slug, external_id):
        team = self.get_team(team_slug)
        existing = UseCase.objects.filter(team=team, external_id=external_id).first()
        if existing is not None:
            check_if_match(request, existing)
        serializer = self.get_serializer(existing, data=request.data)
        serializer.is_valid(raise_exception=True)
        use_case, created = services.upsert_use_case(team=team, external_id=external_id, **serializer.validated_data)
        return self.written(use_case, created=created)


class BulkUpsertSerializer(serializers.Serializer):
    rows = BulkUseCaseRowSerializer(many=True, allow_empty=False, max_length=MAX_BULK_ROWS)


class UseCaseBulkUpsertView(APIView):
    """Upsert up to 1,000 use cases by (team, external id) in one transaction.

    All or nothing: when any row is invalid the answer is 400 with each bad row's index
    and errors, and nothing is saved.
    """

    serializer_class = BulkUpsertSerializer

    @extend_schema(request=BulkUpsertSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        serializer = BulkUpsertSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            raise exceptions.ValidationError(serializer.errors)
        rows = [
            services.BulkRow(team=row.pop("team"), external_id=row.pop("external_id"), fields=row)
            for row in serializer.validated_data["rows"]
        ]
        try:
            result = services.bulk_upsert_use_cases(rows=rows)
        except ValidationError as error:
            raise exceptions.ValidationError({"rows": error.message_dict}) from None
        return Response({
            "created": len(result.created),
            "updated": len(result.updated),
            "results": [
                {"id": use_case.pk, "team": use_case.team.slug, "external_id": use_case.external_id, "created": created}
                for created, group in ((True, result.created), (False, result.updated))
                for use_case in group
            ],
        })


class DeploymentFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="use_case__team__slug")
    model = filters.CharFilter(field_name="model__key")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Deployment
        fields = ["use_case", "team", "model", "hosting", "environment", "status"]


class DeploymentViewSet(ETagMixin, viewsets.ModelViewSet):
    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilter
    search_fields = ["name", "use_case__title", "model__key"]
    ordering_fields = ["monthly_cost", "requests_per_month", "updated_at", "created_at"]
    ordering = ["use_case__title", "pk"]

    def get_queryset(self):
        return selectors.visible_deployments(user=self.request.user)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self.written(services.create_deployment(**serializer.validated_data), created=True)

    def update(self, request, *args, partial=False, **kwargs):
        deployment = self.get_object()
        check_if_match(request, deployment)
        serializer = self.get_serializer(deployment, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return self.written(services.update_deployment(deployment=deployment, **serializer.validated_data))

    def destroy(self, request, *args, **kwargs):
        deployment = self.get_object()
        check_if_match(request, deployment)
        services.delete_deployment(deployment=deployment)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProofOfConceptFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="use_case__team__slug")
    model = filters.CharFilter(field_name="model__key")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = ProofOfConcept
        fields = ["use_case", "team", "model", "status"]


class ProofOfConceptViewSet(ETagMixin, viewsets.ModelViewSet):
    serializer_class = ProofOfConceptSerializer
    filterset_class = ProofOfConceptFilter
    search_fields = ["hypothesis", "use_case__title"]
    ordering_fields = ["start_date", "end_date", "cost", "updated_at"]
    ordering = ["use_case__title", "pk"]

    def get_queryset(self):
        return selectors.visible_pocs(user=self.request.user)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self.written(services.create_poc(**serializer.validated_data), created=True)

    def update(self, request, *args, partial=False, **kwargs):
        poc = self.get_object()
        check_if_match(request, poc)
        serializer = self.get_serializer(poc, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return self.written(services.update_poc(poc=poc, **serializer.validated_data))

    def destroy(self, request, *args, **kwargs):
        poc = self.get_object()
        check_if_match(request, poc)
        services.delete_poc(poc=poc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CostSnapshotViewSet(viewsets.ReadOnlyModelViewSet):
    """What each recompute produced, with the price and rate rows it used."""

    serializer_class = CostSnapshotSerializer
    filterset_fields = ["use_case", "currency", "priced_on"]
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return selectors.visible_cost_snapshots(user=self.request.user).order_by("-created_at", "-pk")


class CurrencySerializer(serializers.Serializer):
    currency = serializers.CharField(required=False, validators=[currency_validator], max_length=3)


class PortfolioSummaryView(APIView):
    """Totals and counts by team, stage and model in the reporting currency (``?currency=JPY``)."""

    @extend_schema(parameters=[CurrencySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        params = CurrencySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        currency = params.validated_data.get("currency", settings.REPORTING_CURRENCY)
        return Response(decimals_as_strings(selectors.portfolio_summary(user=request.user, currency=currency)))


class WhatIfView(APIView):
    """Projected cost and licence effect of swapping one model for another; changes nothing."""

    serializer_class = WhatIfSerializer

    @extend_schema(request=WhatIfSerializer, parameters=[CurrencySerializer], responses=OpenApiTypes.OBJECT)
    def post(self, request):
        serializer = WhatIfSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        params = CurrencySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = serializer.validated_data
        return Response(decimals_as_strings(selectors.what_if(
            user=request.user, from_model=data["from_model"], to_model=data["to_model"],
            team=data.get("team"), stage=data.get("stage"),
            currency=params.validated_data.get("currency", settings.REPORTING_CURRENCY),
        )))


class RevokeTokenView(APIView):
    """``DELETE`` revokes the token the request was made with (or the user's token)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecomputeJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Recompute jobs with their progress; ``POST`` starts a recompute of the whole portfolio."""

    serializer_class = RecomputeJobSerializer
    permission_classes = [IsPortfolioManager]
    filterset_fields = ["status"]
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return selectors.recompute_jobs()

    @extend_schema(request=None, responses={201: RecomputeJobSerializer})
    def create(self, request, *args, **kwargs):
        job = services.start_recompute_job(
            reason="Full recompute requested", scope={"all": True}, requested_by=request.user
        )
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)


class PortfolioSnapshotViewSet(viewsets.ReadOnlyModelViewSet):
    """Daily portfolio totals by team, stage and model, for trend charts."""

    serializer_class = PortfolioSnapshotSerializer
    permission_classes = [IsPortfolioManager]
    filterset_fields = {"taken_on": ["gte", "lte"]}
    ordering_fields = ["taken_on"]

    def get_queryset(self):
        return selectors.portfolio_snapshots()
