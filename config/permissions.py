from rest_framework import permissions

from portfolio.selectors import is_portfolio_manager, manages_members, manages_webhooks


class IsManagerOrReadOnly(permissions.BasePermission):
    """Any signed-in user reads; portfolio managers and superusers write."""

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        return request.method in permissions.SAFE_METHODS or is_portfolio_manager(request.user)


class IsPortfolioManager(permissions.BasePermission):
    """Portfolio-wide figures (jobs, snapshots) are for portfolio managers and superusers."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and is_portfolio_manager(request.user))


class IsTeamLeadOrReadOnly(permissions.BasePermission):
    """Members read their teams' memberships; the team's leads, managers and superusers change them.

    A view that creates asks ``has_object_permission`` about the unsaved membership, so
    the lead check sees the team named in the request body.
    """

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        return request.method in permissions.SAFE_METHODS or manages_members(user=request.user)

    def has_object_permission(self, request, view, obj):
        return request.method in permissions.SAFE_METHODS or manages_members(user=request.user, team=obj.team)


class ManagesWebhooks(permissions.BasePermission):
    """Webhooks are for portfolio managers (whole portfolio, any team) and team leads (their teams).

    A view that creates asks ``has_object_permission`` about the unsaved subscription,
    so a lead asking for a whole-portfolio subscription is refused.
    """

    def has_permission(self, request, view):
        # Managers, and leads of any team.
        return bool(request.user and request.user.is_authenticated and manages_members(user=request.user))

    def has_object_permission(self, request, view, obj):
        subscription = getattr(obj, "subscription", obj)  # A delivery answers as its subscription.
        return manages_webhooks(user=request.user, team=subscription.team)
