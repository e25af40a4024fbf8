"""Contours out to the treatment planning system: re-identified RTSTRUCT, downloaded or sent by C-STORE.

ContourTrial works on pseudonymised images; the planning system needs the original patient and UIDs.
Re-identification maps every pseudonymous UID back through the UID map and restores the sealed
original identity of the CT's study. Only data managers may do it.
"""

import io
from pathlib import Path

import pydicom
from django.conf import settings
from pydicom.dataset import Dataset

from imaging.contours.rtstruct import mask_to_rtstruct
from imaging.ingest.identity import IDENTITY_KEYWORDS, open_identity
from imaging.models import Series, UidMapping
from trial.audit.recorder import record
from trial.models import Patient
from trial.roles import Role
from trial.services.access import require_role
from trial.services.errors import Conflict, InvalidInput

DEID_ATTRIBUTES = ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
                   "LongitudinalTemporalInformationModified")  # fmt: skip


def reference_ct(patient: Patient) -> Series:
    series = Series.objects.filter(study__patient=patient, modality="CT").order_by("received_at").first()
    if series is None:
        raise Conflict(f"{patient.trial_number} has no CT series to reference.")
    return series


def load_series_datasets(series: Series) -> list:
    """Read through the storage API, so filesystem and S3-compatible storage both work."""
    datasets = []
    for instance in series.instances.order_by("slice_index"):
        with instance.file.open("rb") as handle:
            datasets.append(pydicom.dcmread(handle))
    return datasets


def _uid_elements(ds: Dataset):
    for element in ds.iterall():
        if element.VR == "UI" and element.value:
            yield element


def reidentify(ds: Dataset, patient: Patient, identity_token: bytes) -> Dataset:
    """Replace pseudonymous UIDs and identity with the originals (class UIDs are never in the map)."""
    values = {str(e.value) for e in _uid_elements(ds) if not isinstance(e.value, list)}
    originals = dict(
        UidMapping.objects.filter(patient=patient, pseudonymous_uid__in=values).values_list(
            "pseudonymous_uid", "original_uid"
        )
    )
    for element in _uid_elements(ds):
        if isinstance(element.value, str) and element.value in originals:
            element.value = originals[element.value]
    identity = open_identity(identity_token, settings.IDENTITY_KEY)
    for keyword in IDENTITY_KEYWORDS:
        if identity.get(keyword):
            setattr(ds, keyword, identity[keyword])
    for keyword in DEID_ATTRIBUTES:
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def planning_rtstruct(*, actor, patient: Patient, mask, roi_name: str = "GTV") -> Dataset:
    """A re-identified RTSTRUCT of `mask` on the patient's reference CT, for the planning system."""
    require_role(actor, Role.DATA_MANAGER, action="export re-identified structure sets")
    series = reference_ct(patient)
    ct = load_series_datasets(series)
    if tuple(mask.shape) != (series.slices, series.rows, series.columns):
        raise InvalidInput(f"The mask's shape {tuple(mask.shape)} is not the CT grid "
                           f"{(series.slices, series.rows, series.columns)}.")  # fmt: skip
    rtstruct = reidentify(mask_to_rtstruct(mask, ct, roi_name), patient, bytes(series.study.identity_token))
    record(action="export_reidentified", model="imaging.series", object_pk=series.pk,
           object_repr=f"RTSTRUCT {roi_name} of {patient.trial_number}", changes={}, actor=actor)  # fmt: skip
    return rtstruct


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def send_to_planning_system(ds: Dataset, *, ae_title: str = "", host: str = "", port: int = 0) -> None:
    """C-STORE to the configured planning system; a clear error if it is not configured or refuses."""
    from pynetdicom import AE
    from pynetdicom.sop_class import RTStructureSetStorage

    ae_title, host, port = ae_title or settings.TPS_AE_TITLE, host or settings.TPS_HOST, port or settings.TPS_PORT
    if not (ae_title and host):
        raise Conflict("No planning system is configured (set TPS_AE_TITLE, TPS_HOST and TPS_PORT).")
    ae = AE(ae_title=settings.DICOM_AE_TITLE)
    ae.add_requested_context(RTStructureSetStorage)
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        raise Conflict(f"The planning system {ae_title} at {host}:{port} did not accept an association.")
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    if not status or status.Status != 0x0000:
        code = f"0x{status.Status:04X}" if status else "no response"
        raise Conflict(f"The planning system {ae_title} refused the structure set ({code}).")


def write_file(ds: Dataset, path: Path) -> None:
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(encode(ds))
    temporary.replace(path)
