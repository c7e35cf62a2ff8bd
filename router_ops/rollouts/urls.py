"""API routes of this app, included by router_ops/urls.py at the root (paths start with ^api/v1/).

Every path is served with and without a trailing slash (API.md).
"""

from django.urls import re_path

from router_ops.rollouts import views


def api(route: str) -> str:
    return rf"^api/v1/{route}/?$"


ID = r"(?P<pk>[0-9]{1,18})"

api_urlpatterns = [
    re_path(api("router-versions"), views.RouterVersionListView.as_view(), name="router-versions"),
    re_path(api(f"router-versions/{ID}"), views.RouterVersionDetailView.as_view(), name="router-version"),
    re_path(
        api(f"router-versions/{ID}/activate"), views.RouterVersionActivateView.as_view(), name="router-version-activate"
    ),
    re_path(api("rollouts"), views.RolloutListView.as_view(), name="rollouts"),
    re_path(api(f"rollouts/{ID}"), views.RolloutDetailView.as_view(), name="rollout"),
    re_path(api(f"rollouts/{ID}/approve"), views.RolloutApproveView.as_view(), name="rollout-approve"),
    re_path(api(f"rollouts/{ID}/reject"), views.RolloutRejectView.as_view(), name="rollout-reject"),
    re_path(api(f"rollouts/{ID}/advance"), views.RolloutAdvanceView.as_view(), name="rollout-advance"),
    re_path(api(f"rollouts/{ID}/pause"), views.RolloutPauseView.as_view(), name="rollout-pause"),
    re_path(api(f"rollouts/{ID}/resume"), views.RolloutResumeView.as_view(), name="rollout-resume"),
    re_path(api(f"rollouts/{ID}/rollback"), views.RolloutRollbackView.as_view(), name="rollout-rollback"),
    re_path(api("routing-config"), views.RoutingConfigView.as_view(), name="routing-config"),
    re_path(api("routing-config/assign"), views.RoutingAssignView.as_view(), name="routing-config-assign"),
]
