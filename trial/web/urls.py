from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("patients/", views.patient_list, name="patient-list"),
    path("patients/enrol/", views.patient_enrol, name="patient-enrol"),
    path("patients/lookup/", views.patient_lookup, name="patient-lookup"),
    path("patients/<int:pk>/", views.patient_detail, name="patient-detail"),
    path("patients/<int:pk>/randomise/", views.patient_randomise, name="patient-randomise"),
    path("patients/<int:pk>/correct/", views.patient_correct, name="patient-correct"),
    path("patients/<int:pk>/strata/", views.patient_strata, name="patient-strata"),
    path("staff/experience/", views.staff_experience, name="staff-experience"),
    path("audit/", views.audit_list, name="audit-list"),
    path("audit/verify/", views.audit_verify, name="audit-verify"),
]
