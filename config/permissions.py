from rest_framework import permissions

from portfolio.selectors import is_portfolio_manager


class IsManagerOrReadOnly(permissions.BasePermission):
    """Any signed-in user reads; portfolio managers and superusers write."""

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        return request.method in permissions.SAFE_METHODS or is_portfolio_manager(request.user)
