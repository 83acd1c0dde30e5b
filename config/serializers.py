"""The base every model serializer of the API derives from."""

from rest_framework import serializers

from config import drf_speed
from pricing import models as pricing_models
from pricing.currencies import normalise_currency


class CurrencyField(serializers.CharField):
    """An ISO 4217 code; ``usd`` is read as USD, then validated."""

    def to_internal_value(self, data):
        return normalise_currency(super().to_internal_value(data))


class ModelSerializer(drf_speed.ModelSerializer):
    """The base of every model serializer of the API.

    Currency columns are ``CurrencyField``s; the fields are derived once per class (``config.drf_speed``).
    """

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        pricing_models.CurrencyField: CurrencyField,
    }
