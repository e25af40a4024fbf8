from django.urls import path

from . import web

urlpatterns = [
    path("", web.worklist, name="delineation-worklist"),
    path("cases/<int:pk>/", web.workstation, name="delineation-workstation"),
]
