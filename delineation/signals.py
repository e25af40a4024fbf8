"""Domain events of the delineation app, sent after commit."""

from django.dispatch import Signal

# Sent once when a physician's GTV is signed and locked. kwargs: patient, submission.
contour_submitted = Signal()
