"""Blinding indices of a trial from the panel's answers (for the statisticians): Bang per arm, James overall."""

from trial.models import Trial

from .blinding_index import bang_index, james_index
from .models import ReviewAssignment


def panel_guesses(trial: Trial) -> list[tuple[str, str]]:
    """(true arm, guess) for every answered review assignment of the trial."""
    answered = ReviewAssignment.objects.filter(case__patient__trial=trial).exclude(guess="")
    return list(answered.values_list("case__patient__allocation__arm", "guess"))


def blinding_indices(trial: Trial) -> dict:
    guesses = panel_guesses(trial)
    return {"answers": len(guesses), "bang": bang_index(guesses), "james": james_index(guesses)}
