from decimal import Decimal

from rest_framework import serializers

from config.serializers import ModelSerializer
from portfolio.models import Team
from pricing import selectors
from pricing.models import ExchangeRate, LanguageModel, Licence, Price

MAX_EXCHANGE_RATE = Decimal(10_000_000)


class LicenceSerializer(ModelSerializer):
    class Meta:
        model = Licence
        fields = [
            "key",
            "name",
            "url",
            "commercial_use",
            "monthly_active_user_limit",
            "requires_attribution",
            "requires_acceptable_use_policy",
        ]
        read_only_fields = fields


class LanguageModelSerializer(ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="key", read_only=True)
    licence = LicenceSerializer(read_only=True, allow_null=True)
    aliases = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = LanguageModel
        fields = ["id", "key", "display_name", "provider", "licence", "open_weights", "context_window", "aliases"]
        read_only_fields = fields


class PriceSerializer(ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all())
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Price
        fields = [
            "id",
            "model",
            "team",
            "input_per_million",
            "output_per_million",
            "cached_input_per_million",
            "currency",
            "effective_from",
            "source",
            "source_url",
            "created_at",
        ]
        read_only_fields = ["id", "team", "created_at"]


class ModelNameField(serializers.SlugRelatedField):
    """A catalogue model named by its key or any alias; an unknown name lists the closest ones."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return selectors.resolve_model(data)
        except selectors.UnknownModel as error:
            raise serializers.ValidationError(str(error), code="does_not_exist") from None


class CreatePriceSerializer(PriceSerializer):
    """Input of a new price; ``team`` (a slug) makes it that team's contract price."""

    model = ModelNameField(slug_field="key", queryset=LanguageModel.objects.all())
    team = serializers.SlugRelatedField(slug_field="slug", required=False, allow_null=True, queryset=Team.objects.all())

    class Meta(PriceSerializer.Meta):
        read_only_fields = ["id", "created_at"]
        # Uniqueness is checked by the service's full_clean, with the model's messages.
        validators = []


class ExchangeRateSerializer(ModelSerializer):
    class Meta:
        model = ExchangeRate
        fields = ["id", "base", "quote", "rate", "as_of", "source", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            # A rate names its pair: no default currency on the way in.
            "base": {"required": True},
            # Above any real rate, and keeps the value exact where SQLite stores it as a float.
            "rate": {"max_value": MAX_EXCHANGE_RATE},
        }
        validators = []
