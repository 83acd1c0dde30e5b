from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortfolioConfig(AppConfig):
    name = "portfolio"
    verbose_name = _("AI portfolio")

    def ready(self):
        # Tasks register with Celery, and subscribers with portfolio.events, when imported.
        from portfolio import subscribers, tasks, webhooks  # noqa: F401
