from django.urls import path

from . import web

urlpatterns = [
    path("", web.index, name="imaging-index"),
    path("patients/<int:pk>/", web.patient_images, name="imaging-patient"),
    path("quarantine/", web.quarantine, name="imaging-quarantine"),
    path("quarantine/<int:pk>/assign/", web.quarantine_assign, name="imaging-quarantine-assign"),
    path("quarantine/<int:pk>/discard/", web.quarantine_discard, name="imaging-quarantine-discard"),
]
