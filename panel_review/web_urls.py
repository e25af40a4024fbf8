from django.urls import path

from . import web

urlpatterns = [
    path("", web.worklist, name="review-worklist"),
    path("cases/<str:code>/", web.workstation, name="review-workstation"),
    path("assignments/<int:pk>/reassign/", web.reassign, name="review-reassign"),
]
