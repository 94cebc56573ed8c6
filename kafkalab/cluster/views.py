from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    # The panel starts empty-but-labelled and fills over the websocket within a second,
    # so a slow or absent cluster never delays the page itself.
    return render(request, "cluster/home.html", {"health": None})
