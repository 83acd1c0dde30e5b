from django.http import JsonResponse


def refuse_nul_characters(get_response):
    """Answers 400 to a URL holding NUL characters (``%00``), in its path or its query.

    PostgreSQL refuses NUL in text, so a path parameter or filter carrying one would fail
    in the database; no valid request has one. (The API's parsers refuse it in bodies.)
    """

    def middleware(request):
        texts = [request.path, *(text for key, values in request.GET.lists() for text in (key, *values))]
        if any("\x00" in text for text in texts):
            return JsonResponse({"detail": "The URL may not contain NUL (%00) characters."}, status=400)
        return get_response(request)

    return middleware
