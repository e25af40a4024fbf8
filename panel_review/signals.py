"""Domain events of the panel review, sent after commit."""

from django.dispatch import Signal

# Sent once when a case's GTV is approved for treatment planning. kwargs: case.
contour_approved = Signal()
