from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("models", api.ModelVersionViewSet, basename="model-version")
router.register("jobs", api.JobViewSet, basename="inference-job")
router.register("contours", api.ContourViewSet, basename="ai-contour")

urlpatterns = router.urls
