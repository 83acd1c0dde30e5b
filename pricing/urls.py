from django.urls import path

from pricing import views

urlpatterns = [
    path("", views.ModelListView.as_view(), name="model-list"),
    path("break-even/", views.BreakEvenView.as_view(), name="breakeven-calculate"),
    path("models/<path:key>/", views.ModelDetailView.as_view(), name="model-detail"),
]
