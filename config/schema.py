"""The OpenAPI schema class (its own module: drf-spectacular's imports the REST framework settings,
which import ``config.api``)."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with the fields a serializer fixes once the record exists.

    Several serializers make fields read-only when bound to a record (a use case's team, a
    deployment's use case, a membership's user and team): a write ignores them. The update
    operations' request bodies say so, under a component name of their own (``…Update``).
    """

    def get_request_serializer(self):
        serializer = super().get_request_serializer()
        if (
            self.method not in ("PUT", "PATCH")
            or not isinstance(serializer, serializers.ModelSerializer)
            or serializer.instance is not None
        ):
            return serializer
        bound = type(serializer)(serializer.Meta.model(), context=serializer.context)
        if _read_only(bound) == _read_only(serializer):
            return serializer
        bound.fixed_on_update = True
        return bound

    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction)
        if getattr(serializer, "fixed_on_update", False):
            return name.removesuffix("Serializer") + "Update"
        return name


def _read_only(serializer: serializers.Serializer) -> set[str]:
    return {name for name, field in serializer.fields.items() if field.read_only}
