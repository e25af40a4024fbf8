from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("cases", api.ReviewCaseViewSet, basename="review-case")
router.register("sessions", api.ReviewSessionViewSet, basename="review-session")
router.register("approved", api.ApprovedGtvViewSet, basename="approved-gtv")

urlpatterns = router.urls
