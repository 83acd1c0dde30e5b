from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, renderers, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    ETagMixin,
    FilterSet,
    FormParser,
    IdFilter,
    JSONParser,
    MultiPartParser,
    PreconditionFailed,
    UpdatedSinceFilter,
    check_if_match,
    decimals_as_strings,
    etag_of,
)
from config.drf_speed import AnonRateThrottle, ValuesListMixin
from config.permissions import IsManagerOrReadOnly, IsPortfolioManager, IsTeamLeadOrReadOnly, ManagesWebhooks
from config.serializers import CurrencyField
from config.viewsets import ModelViewSet, ReadOnlyModelViewSet
from portfolio import governance, selectors, services, webhooks
from portfolio.api.serializers import (
    MAX_BULK_ROWS,
    AuditEntrySerializer,
    BulkUpsertResultSerializer,
    BulkUseCaseRowSerializer,
    ChecklistItemSerializer,
    CostSnapshotSerializer,
    CreatedWebhookSubscriptionSerializer,
    DeploymentSerializer,
    GateRefusedSerializer,
    MembershipSerializer,
    PortfolioSnapshotSerializer,
    PortfolioSummarySerializer,
    ProofOfConceptSerializer,
    RecomputeJobSerializer,
    SyncUseCaseSerializer,
    TeamSerializer,
    UpdateChecklistItemSerializer,
    UseCaseSerializer,
    WebhookDeliverySerializer,
    WebhookSubscriptionSerializer,
    WhatIfResultSerializer,
    WhatIfSerializer,
)
from portfolio.models import (
    ChecklistItem,
    ChecklistTemplate,
    CostSnapshot,
    Deployment,
    GovernanceFramework,
    Membership,
    PortfolioSnapshot,
    ProofOfConcept,
    RecomputeJob,
    UseCase,
    WebhookDelivery,
    WebhookSubscription,
)
from portfolio.views import evidence_file_response
from pricing.models import currency_validator


class TeamViewSet(ModelViewSet):
    """Teams you belong to (every team for portfolio managers); managers create and change them."""

    serializer_class = TeamSerializer
    permission_classes = [IsManagerOrReadOnly]
    lookup_field = "slug"
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "created_at"]

    def get_queryset(self):
        return selectors.visible_teams(user=self.request.user).order_by("name")

    def update(self, request, *args, partial=False, **kwargs):
        team = self.get_object()
        check_if_match(request, team)
        serializer = self.get_serializer(team, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return self.written(serializer.save(), serializer=serializer)

    def perform_destroy(self, instance):
        check_if_match(self.request, instance)
        if instance.use_cases.exists():
            raise exceptions.ValidationError({"detail": "The team still has use cases; move or delete them first."})
        instance.delete()


class MembershipFilter(FilterSet):
    team = filters.CharFilter(field_name="team__slug")
    user = filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["team", "user", "role"]


class MembershipViewSet(ModelViewSet):
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
        return self.written(membership, created=True, serializer=serializer)

    def update(self, request, *args, partial=False, **kwargs):
        membership = self.get_object()
        check_if_match(request, membership)
        serializer = self.get_serializer(membership, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        role = serializer.validated_data.get("role", membership.role)
        return self.written(services.change_role(membership=membership, role=role), serializer=serializer)

    def destroy(self, request, *args, **kwargs):
        membership = self.get_object()
        check_if_match(request, membership)
        services.remove_member(membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UseCaseFilter(FilterSet):
    team = filters.CharFilter(field_name="team__slug")
    model = filters.CharFilter(field_name="deployments__model__key", distinct=True)
    updated_since = UpdatedSinceFilter()

    class Meta:
        model = UseCase
        fields = [
            "team",
            "stage",
            "category",
            "risk_tier",
            "data_classification",
            "governance_status",
            "currency",
            "needs_recompute",
            "ai_role",
        ]


@extend_schema_view(
    **{
        # Entering production or scaled passes the governance gate: 409 lists what blocks it.
        method: extend_schema(responses={code: UseCaseSerializer, 409: GateRefusedSerializer})
        for method, code in (("create", 201), ("update", 200), ("partial_update", 200))
    }
)
class UseCaseViewSet(ValuesListMixin, ModelViewSet):
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
        use_case = services.create_use_case(**serializer.validated_data)
        return self.written(use_case, created=True, serializer=serializer)

    def update(self, request, *args, partial=False, **kwargs):
        use_case = self.get_object()
        check_if_match(request, use_case)
        serializer = self.get_serializer(use_case, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        try:
            services.update_use_case(use_case=use_case, expected_version=use_case.version, **serializer.validated_data)
        except services.StaleVersion:
            raise PreconditionFailed() from None
        return self.written(use_case, serializer=serializer)

    def destroy(self, request, *args, **kwargs):
        use_case = self.get_object()
        check_if_match(request, use_case)
        services.delete_use_case(use_case=use_case)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=AuditEntrySerializer(many=True))
    @action(detail=True, filter_backends=[], pagination_class=None)
    def history(self, request, pk=None):
        """The use case's audit trail: who changed what, and when."""
        return audit_trail_response(self.get_object().history.all())


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

    @extend_schema(responses={200: SyncUseCaseSerializer, 201: SyncUseCaseSerializer, 409: GateRefusedSerializer})
    def put(self, request, team_slug, external_id):
        team = self.get_team(team_slug)
        if "If-Match" in request.headers:  # Only a conditional write needs the row before the service.
            existing = UseCase.objects.filter(team=team, external_id=external_id).first()
            if existing is not None:
                check_if_match(request, existing)
        # Validated as a full replacement whether the row exists or not: the service decides.
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        use_case, created = services.upsert_use_case(team=team, external_id=external_id, **serializer.validated_data)
        return self.written(use_case, created=created, serializer=serializer)


class BulkUpsertSerializer(serializers.Serializer):
    rows = BulkUseCaseRowSerializer(many=True, allow_empty=False, max_length=MAX_BULK_ROWS)


class UseCaseBulkUpsertView(APIView):
    """Upsert up to 1,000 use cases by (team, external id) in one transaction.

    All or nothing: when any row is invalid the answer is 400 with each bad row's index
    and errors, and nothing is saved.
    """

    serializer_class = BulkUpsertSerializer

    @extend_schema(request=BulkUpsertSerializer, responses=BulkUpsertResultSerializer)
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
        return Response(
            {
                "created": len(result.created),
                "updated": len(result.updated),
                "results": [
                    {
                        "id": use_case.pk,
                        "team": use_case.team.slug,
                        "external_id": use_case.external_id,
                        "created": created,
                    }
                    for created, group in ((True, result.created), (False, result.updated))
                    for use_case in group
                ],
            }
        )


class DeploymentFilter(FilterSet):
    # By id, not a choice among all use cases: another team's id filters to nothing
    # rather than answering differently from an id that does not exist.
    use_case = IdFilter(field_name="use_case_id")
    team = filters.CharFilter(field_name="use_case__team__slug")
    model = filters.CharFilter(field_name="model__key")
    updated_since = UpdatedSinceFilter()

    class Meta:
        model = Deployment
        fields = ["use_case", "team", "model", "hosting", "environment", "status"]


class DeploymentViewSet(ModelViewSet):
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
        deployment = services.create_deployment(**serializer.validated_data)
        return self.written(deployment, created=True, serializer=serializer)

    def update(self, request, *args, partial=False, **kwargs):
        deployment = self.get_object()
        check_if_match(request, deployment)
        serializer = self.get_serializer(deployment, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        updated = services.update_deployment(deployment=deployment, **serializer.validated_data)
        return self.written(updated, serializer=serializer)

    def destroy(self, request, *args, **kwargs):
        deployment = self.get_object()
        check_if_match(request, deployment)
        services.delete_deployment(deployment=deployment)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=AuditEntrySerializer(many=True))
    @action(detail=True, filter_backends=[], pagination_class=None)
    def history(self, request, pk=None):
        """The deployment's audit trail: who changed what, and when."""
        return audit_trail_response(self.get_object().history.all())


class ProofOfConceptFilter(FilterSet):
    use_case = IdFilter(field_name="use_case_id")
    team = filters.CharFilter(field_name="use_case__team__slug")
    model = filters.CharFilter(field_name="model__key")
    updated_since = UpdatedSinceFilter()

    class Meta:
        model = ProofOfConcept
        fields = ["use_case", "team", "model", "status"]


class ProofOfConceptViewSet(ModelViewSet):
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
        return self.written(services.create_poc(**serializer.validated_data), created=True, serializer=serializer)

    def update(self, request, *args, partial=False, **kwargs):
        poc = self.get_object()
        check_if_match(request, poc)
        serializer = self.get_serializer(poc, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return self.written(services.update_poc(poc=poc, **serializer.validated_data), serializer=serializer)

    def destroy(self, request, *args, **kwargs):
        poc = self.get_object()
        check_if_match(request, poc)
        services.delete_poc(poc=poc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CostSnapshotFilter(FilterSet):
    use_case = IdFilter(field_name="use_case_id")
    # Snapshots are never edited, so a row's creation is its last change.
    updated_since = UpdatedSinceFilter(field_name="created_at")

    class Meta:
        model = CostSnapshot
        fields = ["use_case", "currency", "priced_on"]


class CostSnapshotViewSet(ReadOnlyModelViewSet):
    """What each recompute produced, with the price and rate rows it used."""

    serializer_class = CostSnapshotSerializer
    filterset_class = CostSnapshotFilter
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return selectors.visible_cost_snapshots(user=self.request.user).order_by("-created_at", "-pk")


class CurrencySerializer(serializers.Serializer):
    currency = CurrencyField(required=False, validators=[currency_validator], max_length=3)


class PortfolioSummaryView(APIView):
    """Totals and counts by team, stage and model in the reporting currency (``?currency=JPY``)."""

    @extend_schema(parameters=[CurrencySerializer], responses=PortfolioSummarySerializer)
    def get(self, request):
        # A plain dict, not the QueryDict: REST framework reads a form's empty "currency=" as
        # absent, where the schema refuses it.
        params = CurrencySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        currency = params.validated_data.get("currency", settings.REPORTING_CURRENCY)
        return Response(decimals_as_strings(selectors.portfolio_summary(user=request.user, currency=currency)))


class WhatIfView(APIView):
    """Projected cost and licence effect of swapping one model for another; changes nothing."""

    serializer_class = WhatIfSerializer

    @extend_schema(request=WhatIfSerializer, parameters=[CurrencySerializer], responses=WhatIfResultSerializer)
    def post(self, request):
        serializer = WhatIfSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        # As the summary: an empty "currency=" is refused, not read as absent.
        params = CurrencySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        data = serializer.validated_data
        return Response(
            decimals_as_strings(
                selectors.what_if(
                    user=request.user,
                    from_model=data["from_model"],
                    to_model=data["to_model"],
                    team=data.get("team"),
                    stage=data.get("stage"),
                    currency=params.validated_data.get("currency", settings.REPORTING_CURRENCY),
                )
            )
        )


class ObtainTokenView(ObtainAuthToken):
    """``POST`` username and password for the user's API token; repeated failures lock out (429)."""

    # Per address too: the lockout counts per username, so spraying many names is throttled here.
    throttle_classes = [AnonRateThrottle]
    # REST framework's view names its own parsers; these refuse deep nesting and NULs alike.
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    def get_serializer_context(self):
        # Authenticate with Django's request: django-axes flags a lockout on it, and its
        # middleware turns the flag into the 429 (a flag on DRF's wrapper would be lost).
        return {**super().get_serializer_context(), "request": self.request._request}


class RevokeTokenView(APIView):
    """``DELETE`` revokes the token the request was made with (or the user's token)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecomputeJobFilter(FilterSet):
    class Meta:
        model = RecomputeJob
        fields = ["status"]


class RecomputeJobViewSet(mixins.CreateModelMixin, ReadOnlyModelViewSet):
    """Recompute jobs with their progress; ``POST`` starts a recompute of the whole portfolio."""

    serializer_class = RecomputeJobSerializer
    permission_classes = [IsPortfolioManager]
    filterset_class = RecomputeJobFilter
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return selectors.recompute_jobs()

    @extend_schema(request=None, responses={201: RecomputeJobSerializer})
    def create(self, request, *args, **kwargs):
        job = services.start_recompute_job(
            reason="Full recompute requested", scope={"all": True}, requested_by=request.user
        )
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)


class PortfolioSnapshotFilter(FilterSet):
    class Meta:
        model = PortfolioSnapshot
        fields = {"taken_on": ["gte", "lte"]}


class PortfolioSnapshotViewSet(ReadOnlyModelViewSet):
    """Daily portfolio totals by team, stage and model, for trend charts."""

    serializer_class = PortfolioSnapshotSerializer
    permission_classes = [IsPortfolioManager]
    filterset_class = PortfolioSnapshotFilter
    ordering_fields = ["taken_on"]

    def get_queryset(self):
        return selectors.portfolio_snapshots()


# --- Governance ----------------------------------------------------------------------------


def audit_trail_response(records) -> Response:
    return Response(AuditEntrySerializer(selectors.audit_trail(records=records), many=True).data)


class BinaryFileRenderer(renderers.BaseRenderer):
    """Lets a download be asked for as ``application/octet-stream``; errors still read as JSON."""

    media_type = "application/octet-stream"
    format = "bin"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else renderers.JSONRenderer().render(data)


class ChecklistItemFilter(FilterSet):
    use_case = IdFilter(field_name="use_case_id")
    team = filters.CharFilter(field_name="use_case__team__slug")
    category = filters.ChoiceFilter(field_name="template__category", choices=ChecklistTemplate.Category.choices)
    framework = filters.ChoiceFilter(field_name="template__framework", choices=GovernanceFramework.choices)
    kind = filters.ChoiceFilter(field_name="template__kind", choices=ChecklistTemplate.Kind.choices)
    code = filters.CharFilter(field_name="template__code")
    updated_since = UpdatedSinceFilter()

    class Meta:
        model = ChecklistItem
        fields = ["use_case", "team", "category", "framework", "kind", "code", "status", "required"]


class ChecklistItemViewSet(mixins.UpdateModelMixin, ReadOnlyModelViewSet):
    """Governance checklist items of the use cases you may see.

    ``PATCH`` records evidence (text, link, file as multipart) and the status of a manual
    item; a portfolio manager waives an item with ``status: waived`` and a
    ``waiver_reason``. A member who tries to waive gets 403.
    """

    serializer_class = ChecklistItemSerializer
    filterset_class = ChecklistItemFilter
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    http_method_names = ["get", "patch", "head", "options"]
    search_fields = ["template__code", "template__title", "use_case__title"]
    ordering_fields = ["status", "updated_at", "created_at"]
    ordering = ["use_case_id", "template__category", "template__position", "pk"]

    def get_queryset(self):
        return selectors.visible_checklist_items(user=self.request.user)

    @extend_schema(request=UpdateChecklistItemSerializer, responses={200: ChecklistItemSerializer})
    def partial_update(self, request, *args, **kwargs):
        item = self.get_object()
        check_if_match(request, item)
        serializer = UpdateChecklistItemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The answer is the whole item, not the fields this serializer takes.
        return self.written(governance.update_item(item=item, by=request.user, **serializer.validated_data))

    @extend_schema(responses=AuditEntrySerializer(many=True))
    @action(detail=True, filter_backends=[], pagination_class=None)
    def history(self, request, pk=None):
        """The item's audit trail: who recorded, waived or re-evaluated what, and when."""
        return audit_trail_response(self.get_object().history.all())

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(
        detail=True,
        url_path="evidence-file",
        filter_backends=[],
        pagination_class=None,
        renderer_classes=[renderers.JSONRenderer, BinaryFileRenderer],
    )
    def evidence_file(self, request, pk=None):
        """The evidence file, as an attachment."""
        return evidence_file_response(self.get_object())


# --- Webhooks ------------------------------------------------------------------------------


class WebhookSubscriptionFilter(FilterSet):
    team = filters.CharFilter(field_name="team__slug")
    whole_portfolio = filters.BooleanFilter(field_name="team", lookup_expr="isnull")

    class Meta:
        model = WebhookSubscription
        fields = ["team", "whole_portfolio", "active"]


class WebhookSubscriptionViewSet(ModelViewSet):
    """Signed webhooks: portfolio managers subscribe the whole portfolio or any team, leads their teams.

    The signing secret is in the answer to ``POST`` only. A subscription whose deliveries
    keep failing is turned off, with ``disabled_reason``; ``PATCH {"active": true}`` turns it back on.
    """

    serializer_class = WebhookSubscriptionSerializer
    permission_classes = [ManagesWebhooks]
    filterset_class = WebhookSubscriptionFilter
    search_fields = ["target_url", "description"]
    ordering_fields = ["created_at", "updated_at"]
    ordering = ["pk"]

    def get_queryset(self):
        return selectors.visible_webhook_subscriptions(user=self.request.user)

    @extend_schema(responses={201: CreatedWebhookSubscriptionSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.check_object_permissions(request, WebhookSubscription(team=serializer.validated_data.get("team")))
        subscription = webhooks.create_subscription(owner=request.user, **serializer.validated_data)
        response = Response(CreatedWebhookSubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)
        response["ETag"] = etag_of(subscription)
        return response

    def update(self, request, *args, partial=False, **kwargs):
        subscription = self.get_object()
        check_if_match(request, subscription)
        serializer = self.get_serializer(subscription, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        updated = webhooks.update_subscription(subscription=subscription, **serializer.validated_data)
        return self.written(updated, serializer=serializer)

    def destroy(self, request, *args, **kwargs):
        subscription = self.get_object()
        check_if_match(request, subscription)
        webhooks.delete_subscription(subscription=subscription)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryFilter(FilterSet):
    subscription = IdFilter(field_name="subscription_id")

    class Meta:
        model = WebhookDelivery
        fields = ["subscription", "status", "event_type"]


class WebhookDeliveryViewSet(ReadOnlyModelViewSet):
    """The delivery log of the subscriptions you manage: status, attempts and the last error of each event."""

    serializer_class = WebhookDeliverySerializer
    permission_classes = [ManagesWebhooks]
    filterset_class = WebhookDeliveryFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-pk"]

    def get_queryset(self):
        return selectors.visible_webhook_deliveries(user=self.request.user)

    @extend_schema(request=None, responses={201: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def redeliver(self, request, pk=None):
        """Send a delivered or abandoned event again: a new delivery with the same event id."""
        delivery = webhooks.redeliver(delivery=self.get_object())
        return Response(self.get_serializer(delivery).data, status=status.HTTP_201_CREATED)
