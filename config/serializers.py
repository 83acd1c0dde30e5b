"""The base every model serializer of the API derives from."""
import copy

from rest_framework import serializers


class ModelSerializer(serializers.ModelSerializer):
    """A ``ModelSerializer`` that derives its fields from the model once per class.

    REST framework derives every field from the model on each instantiation (labels,
    validators, choices, relations): about 4 ms for a thirty-field serializer, most of
    what a detail request costs. What it derives depends on the class alone, so it is
    built once and each instance gets its own deep copy, which it may change freely
    (``read_only`` on update, a scoped ``queryset``).
    """

    def get_fields(self):
        cls = type(self)
        # Looked up in the class's own namespace: a subclass never takes its parent's fields.
        fields = cls.__dict__.get("_derived_fields")
        if fields is None:
            fields = super().get_fields()
            cls._derived_fields = fields
        return copy.deepcopy(fields)
