"""Domain events of the imaging app, sent after commit."""

from django.dispatch import Signal

# Sent once per patient when the trial's required modalities are all stored. kwargs: patient.
imaging_complete = Signal()
