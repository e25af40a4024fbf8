"""The model registry in the Django admin, read-only and for data managers (and superusers): models are
registered by `register_model`, which verifies and copies the files and audits the change."""

from django.contrib import admin

from trial.roles import Role, has_role

from .models import ActiveModel, ModelVersion


class DataManagerReadOnly(admin.ModelAdmin):
    def _allowed(self, request) -> bool:
        return request.user.is_active and (request.user.is_superuser or has_role(request.user, Role.DATA_MANAGER))

    def has_module_permission(self, request):
        return self._allowed(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(DataManagerReadOnly):
    list_display = ["name", "version", "backend", "intended_use", "registered_at"]
    list_filter = ["backend"]
    search_fields = ["name", "version"]
    readonly_fields = ["sha256"]


@admin.register(ActiveModel)
class ActiveModelAdmin(DataManagerReadOnly):
    list_display = ["trial", "model_version", "activated_by", "activated_at"]
