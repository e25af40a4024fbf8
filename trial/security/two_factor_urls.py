"""Two-factor pages, mounted under accounts/two-factor/ (config/urls.py)."""

from django.urls import path

from . import two_factor_views as views

urlpatterns = [
    path("", views.overview, name="two-factor"),
    path("enrol/", views.enrol, name="two-factor-enrol"),
    path("verify/", views.verify, name="two-factor-verify"),
    path("remove/", views.remove, name="two-factor-remove"),
    path("manage/", views.manage, name="two-factor-manage"),
    path("reset/", views.reset, name="two-factor-reset"),
]
