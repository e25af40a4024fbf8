from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("series", api.SeriesViewSet, basename="series")
router.register("instances", api.InstanceViewSet, basename="instance")
router.register("uploads", api.UploadViewSet, basename="upload")
router.register("quarantine", api.QuarantineViewSet, basename="quarantine")
router.register("uid-map", api.UidMappingViewSet, basename="uid-map")

urlpatterns = router.urls
