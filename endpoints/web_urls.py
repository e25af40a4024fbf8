from django.urls import path

from . import web

urlpatterns = [
    path("", web.index, name="endpoints-index"),
    path("download/<str:what>/<str:fmt>/", web.download, name="endpoints-download"),
    path("lock/", web.lock, name="endpoints-lock"),
    path("unblind/", web.unblind, name="endpoints-unblind"),
]
