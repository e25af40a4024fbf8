"""Domain events of the trial core, sent after commit."""

from django.dispatch import Signal

# Sent once per patient after the allocation commits. kwargs: patient, allocation.
patient_randomised = Signal()
