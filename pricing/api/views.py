from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import FilterSet, UpdatedSinceFilter
from config.permissions import IsManagerOrReadOnly
from config.viewsets import ReadOnlyModelViewSet
from portfolio import selectors as portfolio_selectors
from portfolio.api.serializers import AuditEntrySerializer
from pricing import selectors, services
from pricing.api.serializers import (
    CreatePriceSerializer,
    ExchangeRateSerializer,
    LanguageModelSerializer,
    PriceSerializer,
)
from pricing.models import ExchangeRate, LanguageModel, Price


class LanguageModelFilter(FilterSet):
    updated_since = UpdatedSinceFilter()

    class Meta:
        model = LanguageModel
        fields = ["open_weights", "provider__key", "licence__key"]


class LanguageModelViewSet(ReadOnlyModelViewSet):
    """The model catalogue with licences; changed in the admin."""

    serializer_class = LanguageModelSerializer
    lookup_field = "key"
    lookup_value_regex = r"[^/]+/.+"
    filterset_class = LanguageModelFilter
    search_fields = ["key", "display_name", "aliases__name"]
    ordering_fields = ["key", "display_name", "context_window"]

    def get_queryset(self):
        return selectors.list_models()


class PriceFilter(FilterSet):
    model = filters.CharFilter(field_name="model__key")
    team = filters.CharFilter(field_name="team__slug")
    effective_from_after = filters.DateFilter(field_name="effective_from", lookup_expr="gte")
    effective_from_before = filters.DateFilter(field_name="effective_from", lookup_expr="lte")
    # Prices are never edited, so a row's creation is its last change.
    updated_since = UpdatedSinceFilter(field_name="created_at")

    class Meta:
        model = Price
        fields = ["model", "team", "currency", "source"]


class PriceViewSet(mixins.CreateModelMixin, ReadOnlyModelViewSet):
    """Effective-dated prices. Never edited: a new price supersedes the old one from its date."""

    permission_classes = [IsManagerOrReadOnly]
    filterset_class = PriceFilter
    ordering_fields = ["effective_from", "created_at"]

    def get_queryset(self):
        # Contract prices are the team's business: others see public prices only.
        prices = portfolio_selectors.visible_prices(user=self.request.user)
        return prices.order_by("model__key", "-effective_from", "pk")

    def get_serializer_class(self):
        return CreatePriceSerializer if self.action == "create" else PriceSerializer

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        price = services.add_price(**serializer.validated_data)
        return Response(PriceSerializer(price).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=AuditEntrySerializer(many=True))
    @action(detail=True, filter_backends=[], pagination_class=None)
    def history(self, request, pk=None):
        """The price's audit trail: prices are never edited, so it shows who added it, and when."""
        records = self.get_object().history.all()
        return Response(AuditEntrySerializer(portfolio_selectors.audit_trail(records=records), many=True).data)


class ExchangeRateFilter(FilterSet):
    # Rates are never edited, so a row's creation is its last change.
    updated_since = UpdatedSinceFilter(field_name="created_at")

    class Meta:
        model = ExchangeRate
        fields = ["base", "quote"]


class ExchangeRateViewSet(mixins.CreateModelMixin, ReadOnlyModelViewSet):
    """Exchange rates by date. Never edited: a newer rate for the pair supersedes the old one."""

    permission_classes = [IsManagerOrReadOnly]
    serializer_class = ExchangeRateSerializer
    filterset_class = ExchangeRateFilter
    ordering_fields = ["as_of"]

    def get_queryset(self):
        return selectors.list_exchange_rates()

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rate = services.add_exchange_rate(**serializer.validated_data)
        return Response(self.get_serializer(rate).data, status=status.HTTP_201_CREATED)
