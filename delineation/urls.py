from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("cases", api.CaseViewSet, basename="delineation-case")
router.register("sessions", api.SessionViewSet, basename="delineation-session")

urlpatterns = router.urls
