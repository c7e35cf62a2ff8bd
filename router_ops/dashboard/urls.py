from django.urls import path

from router_ops.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
]
