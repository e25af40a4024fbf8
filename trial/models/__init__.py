from .audit import AuditChainHead, AuditedModel, AuditEntry, AuditVerification
from .outbox import TaskOutbox
from .patient import Allocation, Consent, Patient, StratumCorrection
from .signature import Signature
from .staff import StaffProfile
from .trial import RandomisationSecret, Site, SiteMembership, Trial

__all__ = [
    "Allocation",
    "AuditChainHead",
    "AuditEntry",
    "AuditVerification",
    "AuditedModel",
    "Consent",
    "Patient",
    "RandomisationSecret",
    "Signature",
    "Site",
    "SiteMembership",
    "StaffProfile",
    "StratumCorrection",
    "TaskOutbox",
    "Trial",
]
