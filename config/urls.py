from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import views

urlpatterns = [
    path("healthz/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include(("config.api_urls", "api"))),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("catalogue/", include(("pricing.urls", "pricing"))),
    path("", include(("portfolio.urls", "portfolio"))),
]
# MEDIA_URL is served by no pattern, in DEBUG too: evidence files are downloaded through
# views that check who may see the item (portfolio:checklistitem-evidence-file and the API's).

# A database outage met outside a view answers 503 too (config.middleware.server_error).
handler500 = "config.middleware.server_error"
