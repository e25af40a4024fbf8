from django.urls import path

from . import web

urlpatterns = [
    path("patients/<int:pk>/", web.patient_proposal, name="inference-patient"),
    path("patients/<int:pk>/rerun/", web.patient_rerun, name="inference-rerun"),
    path("models/", web.model_list, name="inference-models"),
]
