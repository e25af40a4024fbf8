from django.urls import path

from . import dashboard_views

urlpatterns = [
    path("coordinator/", dashboard_views.coordinator, name="dashboard-coordinator"),
    path("data-manager/", dashboard_views.data_manager, name="dashboard-data-manager"),
]
