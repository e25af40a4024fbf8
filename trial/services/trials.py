"""Choosing the trial a request is about."""

from trial.models import Trial

from .errors import InvalidInput


def default_trial(trial: Trial | None = None) -> Trial:
    if trial is not None:
        return trial
    open_trials = list(Trial.objects.filter(is_open=True)[:2])
    if len(open_trials) == 1:
        return open_trials[0]
    if not open_trials:
        raise InvalidInput("No trial is open.")
    raise InvalidInput("Several trials are open: name the trial.")
