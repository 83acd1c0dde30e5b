"""Template context every page needs: what the navigation offers this user."""

from django.conf import settings

from portfolio import selectors


def navigation(request):
    user = getattr(request, "user", None)
    return {
        "is_portfolio_manager": user is not None and selectors.is_portfolio_manager(user),
        "reporting_currency": settings.REPORTING_CURRENCY,
    }
