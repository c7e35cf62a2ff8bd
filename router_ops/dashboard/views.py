"""Server-rendered pages. Thin: each calls selectors and renders a template."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from router_ops.dashboard.selectors import applications_for_user


@login_required
def home(request):
    return render(request, "dashboard/home.html", {"applications": applications_for_user(request.user)})
