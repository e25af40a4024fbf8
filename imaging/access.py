"""Who may see or send a patient's images. Panel members reach images only through review cases (issue 6)."""

from imaging.models import Series
from trial.models import Patient
from trial.roles import Role, has_role, is_blinded
from trial.services.access import patients_visible_to, require_coordinator_of, require_role


def patients_with_images_for(user):
    if is_blinded(user):
        return Patient.objects.none()
    if has_role(user, Role.DATA_MANAGER):
        return Patient.objects.all()
    if has_role(user, Role.COORDINATOR, Role.PHYSICIAN):
        return patients_visible_to(user)
    return Patient.objects.none()


def series_visible_to(user):
    return Series.objects.filter(study__patient__in=patients_with_images_for(user))


def require_image_sender(user, patient: Patient) -> None:
    """Coordinators of the patient's site and data managers send images."""
    if has_role(user, Role.DATA_MANAGER):
        return
    require_role(user, Role.COORDINATOR, Role.DATA_MANAGER, action="send images")
    require_coordinator_of(user, patient.site, action=f"send images for {patient.trial_number}")
