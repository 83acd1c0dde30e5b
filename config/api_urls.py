"""Version 1 of the REST API, with its OpenAPI schema and local interactive docs."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from portfolio.api.views import RevokeTokenView

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="auth-token"),
    path("auth/token/revoke/", RevokeTokenView.as_view(), name="auth-token-revoke"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include("portfolio.api.urls")),
    path("", include("pricing.api.urls")),
]
