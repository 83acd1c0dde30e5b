"""The viewsets every API resource derives from.

A module of its own: ``config.api`` holds classes the REST framework settings name, and
REST framework's views module reads those settings while it loads, so ``config.api``
cannot import the views.
"""

from rest_framework import viewsets

from config.api import ETagMixin, ListFiltersMixin


class ReadOnlyModelViewSet(ListFiltersMixin, ETagMixin, viewsets.ReadOnlyModelViewSet):
    """List and detail: ``ETag`` on details, query-parameter filters on lists only."""


class ModelViewSet(ListFiltersMixin, ETagMixin, viewsets.ModelViewSet):
    """List, detail and writes: ``ETag`` on details and on what writes answer (``written``), filters on lists only."""
