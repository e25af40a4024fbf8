from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", include("trial.security.two_factor_urls")),
    path("api/v1/", include("trial.api.urls")),
    path("api/v1/imaging/", include("imaging.urls")),
    path("imaging/", include("imaging.web_urls")),
    path("api/v1/inference/", include("inference.urls")),
    path("inference/", include("inference.web_urls")),
    path("api/v1/delineation/", include("delineation.urls")),
    path("delineation/", include("delineation.web_urls")),
    path("api/v1/review/", include("panel_review.urls")),
    path("review/", include("panel_review.web_urls")),
    path("endpoints/", include("endpoints.web_urls")),
    path("dashboards/", include("endpoints.dashboard_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("", include("trial.web.urls")),
]

handler500 = "trial.db_unavailable.server_error"  # a database outage answers 503 + Retry-After, not a 500 page
