from .audit import AuditChainHead, AuditedModel, AuditEntry, AuditVerification
from .patient import Allocation, Consent, Patient, StratumCorrection
from .signature import Signature
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
    "StratumCorrection",
    "Trial",
]
