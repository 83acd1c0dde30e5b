"""Views that belong to the deployment rather than to an app."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def health(request):
    """Liveness for load balancers and orchestrators: the process answers; no database, no login.

    Also the floor of the load test: a bare Django JSON view through the same middleware.
    """
    return JsonResponse({"status": "ok"})
