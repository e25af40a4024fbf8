from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("trials", views.TrialViewSet, basename="trial")
router.register("sites", views.SiteViewSet, basename="site")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("audit/entries", views.AuditEntryViewSet, basename="audit-entry")
router.register("audit/verifications", views.AuditVerificationViewSet, basename="audit-verification")

urlpatterns = [path("me/", views.MeView.as_view(), name="me"), *router.urls]
