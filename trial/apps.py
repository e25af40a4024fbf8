from django.apps import AppConfig, apps
from django.db.models.signals import post_delete


class TrialConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "trial"
    verbose_name = "Trial core"

    def ready(self):
        from trial.audit import signals
        from trial.models import AuditedModel

        for model in apps.get_models():
            if issubclass(model, AuditedModel):
                post_delete.connect(
                    signals.audit_delete, sender=model, dispatch_uid=f"audit-delete-{model._meta.label}"
                )
        signals.connect_account_events()
