"""Reactions: a submitted GTV opens a blinded review; an approved one has its corrections measured; a change of
panel membership reconciles the review work (cases waiting for a reviewer, reviews of members who left)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from delineation.signals import contour_submitted
from trial import outbox

from .signals import contour_approved


@receiver(contour_submitted, dispatch_uid="panel_review.open_review")
def open_review_on_submission(sender, patient, submission, **kwargs):
    from .services import open_review

    open_review(submission)


@receiver(contour_approved, dispatch_uid="panel_review.measure_corrections")
def measure_corrections_on_approval(sender, case, **kwargs):
    from .tasks import measure_corrections

    # contour_approved comes after the approval committed, so this row commits on its own; should the process die
    # in between, reconcile() finds the approved case unmeasured and asks again.
    outbox.enqueue(measure_corrections, case.pk)


@receiver(m2m_changed, sender=get_user_model().groups.through, dispatch_uid="panel_review.panel_changed")
def reconcile_on_panel_change(sender, instance, action, pk_set, **kwargs):
    from django.contrib.auth.models import Group

    from trial.roles import Role

    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if kwargs.get("reverse"):  # changed from the group's side (group.user_set): instance is the group
        panel = instance.name == Role.PANEL.value
    else:  # user.groups: pk_set holds group ids
        panel = action == "post_clear" or Group.objects.filter(pk__in=pk_set or (), name=Role.PANEL.value).exists()
    if panel:
        from .tasks import reconcile_reviews

        outbox.enqueue(reconcile_reviews)  # sent when the membership change commits
