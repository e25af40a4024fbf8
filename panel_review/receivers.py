"""Reactions: a submitted GTV opens a blinded review; an approved one has its corrections measured."""

from django.dispatch import receiver

from delineation.signals import contour_submitted

from .signals import contour_approved


@receiver(contour_submitted, dispatch_uid="panel_review.open_review")
def open_review_on_submission(sender, patient, submission, **kwargs):
    from .services import open_review

    open_review(submission)


@receiver(contour_approved, dispatch_uid="panel_review.measure_corrections")
def measure_corrections_on_approval(sender, case, **kwargs):
    from .tasks import measure_corrections

    measure_corrections.delay(case.pk)
