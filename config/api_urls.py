"""Version 1 of the REST API, with its OpenAPI schema and local interactive docs."""

from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portfolio.api.views import ObtainTokenView, RevokeTokenView

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("auth/token/revoke/", RevokeTokenView.as_view(), name="auth-token-revoke"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's script is served as a file of its own (the split view), so no inline
    # script runs here either; the page's policy only admits the images its stylesheet
    # inlines and the <style> element it adds (styles cannot run script).
    path(
        "docs/",
        csp_update({"img-src": ["data:"], "style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api:schema")
        ),
        name="docs",
    ),
    path("", include("portfolio.api.urls")),
    path("", include("pricing.api.urls")),
]
