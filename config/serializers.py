"""The base every model serializer of the API derives from."""

import copy

from rest_framework import serializers

from pricing import models as pricing_models
from pricing.currencies import normalise_currency


class CurrencyField(serializers.CharField):
    """An ISO 4217 code; ``usd`` is read as USD, then validated."""

    def to_internal_value(self, data):
        return normalise_currency(super().to_internal_value(data))


def _copy(field: serializers.Field) -> serializers.Field:
    """A field for one serializer instance, from the class's derived field.

    A plain field is copied shallowly: binding and per-instance changes (``read_only``, a
    scoped ``queryset``) assign attributes, which land on the copy. A field that holds
    other fields (a nested serializer, a list's ``child``, a to-many relation) is copied
    deeply, as REST framework does, since binding reaches into what it holds.
    """
    if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child") or hasattr(field, "child_relation"):
        return copy.deepcopy(field)
    return copy.copy(field)


class ModelSerializer(serializers.ModelSerializer):
    """A ``ModelSerializer`` that derives its fields from the model once per class.

    REST framework derives every field from the model on each instantiation (labels,
    validators, choices, relations), then deep-copies each one: about 4 ms for a
    thirty-field serializer, most of what a detail request costs. What it derives depends
    on the class alone, so it is built once and each instance gets its own copies, which
    it may change freely.
    """

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        pricing_models.CurrencyField: CurrencyField,
    }

    def get_fields(self):
        cls = type(self)
        # Looked up in the class's own namespace: a subclass never takes its parent's fields.
        fields = cls.__dict__.get("_derived_fields")
        if fields is None:
            fields = super().get_fields()
            cls._derived_fields = fields
        return {name: _copy(field) for name, field in fields.items()}
