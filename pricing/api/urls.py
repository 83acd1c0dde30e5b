from rest_framework.routers import SimpleRouter

from pricing.api import views

router = SimpleRouter()
router.register("models", views.LanguageModelViewSet, basename="model")
router.register("prices", views.PriceViewSet, basename="price")
router.register("exchange-rates", views.ExchangeRateViewSet, basename="exchange-rate")

urlpatterns = router.urls
