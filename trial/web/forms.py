"""Page forms. They only parse input; the services decide what is allowed."""

from django import forms

from trial.models import Site, Trial
from trial.services.enrolment import physicians_at


class EnrolmentForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.none(), to_field_name="code")
    hospital_id = forms.CharField(
        label="Hospital patient id",
        max_length=100,
        help_text="Stored only as a keyed hash; used to find the patient again.",
    )
    physician = forms.ChoiceField(label="Treating radiation oncologist")
    consent_date = forms.DateField(label="Date of written consent", widget=forms.DateInput(attrs={"type": "date"}))
    consent_form_version = forms.ChoiceField(label="Consent form version")

    def __init__(self, *args, trial: Trial, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial = trial
        self.fields["site"].queryset = sites
        self.fields["consent_form_version"].choices = [(v, v) for v in trial.consent_form_versions]
        physicians = []
        for site in sites:
            physicians += [
                (u.username, f"{u.get_full_name() or u.username} ({site.code})") for u in physicians_at(site)
            ]
        self.fields["physician"].choices = [("", "— choose —"), *physicians]
        for criterion in trial.eligibility_criteria:
            self.fields[f"elig_{criterion['code']}"] = forms.TypedChoiceField(
                label=f"{criterion['code']} ({criterion['kind']}): {criterion['text']}",
                choices=[("", "— answer —"), ("yes", "Yes"), ("no", "No")],
                coerce=lambda v: v == "yes",
                required=True,
            )
        for factor in trial.strata_factors:
            if factor["name"] == "site":
                continue
            self.fields[f"stratum_{factor['name']}"] = forms.ChoiceField(
                label=factor["label"],
                choices=[("", "— choose —")] + [(lv["code"], lv["label"]) for lv in factor["levels"]],
            )

    def eligibility(self) -> dict:
        return {c["code"]: self.cleaned_data[f"elig_{c['code']}"] for c in self.trial.eligibility_criteria}

    def strata(self) -> dict:
        return {
            f["name"]: self.cleaned_data[f"stratum_{f['name']}"]
            for f in self.trial.strata_factors
            if f["name"] != "site"
        }

    def patient_fields(self):
        return [self["site"], self["hospital_id"], self["physician"]]

    def eligibility_fields(self):
        return [self[f"elig_{c['code']}"] for c in self.trial.eligibility_criteria]

    def strata_fields(self):
        return [self[f"stratum_{f['name']}"] for f in self.trial.strata_factors if f["name"] != "site"]


class StrataForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), min_length=10)

    def __init__(self, *args, trial: Trial, initial_strata: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial = trial
        for factor in _non_site_factors(trial):
            self.fields[f"stratum_{factor['name']}"] = forms.ChoiceField(
                label=factor["label"],
                choices=[(lv["code"], lv["label"]) for lv in factor["levels"]],
                initial=initial_strata.get(factor["name"]),
            )
        self.order_fields([*(f"stratum_{f['name']}" for f in _non_site_factors(trial)), "reason"])

    def strata(self) -> dict:
        return {f["name"]: self.cleaned_data[f"stratum_{f['name']}"] for f in _non_site_factors(self.trial)}


def _non_site_factors(trial: Trial) -> list[dict]:
    return [factor for factor in trial.strata_factors if factor["name"] != "site"]


class SignatureForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        label="Your password (electronic signature)",
    )


class CorrectionForm(SignatureForm):
    factor = forms.ChoiceField()
    level = forms.CharField(max_length=64)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), min_length=10)

    def __init__(self, *args, trial: Trial, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["factor"].choices = [(f["name"], f["label"]) for f in trial.strata_factors if f["name"] != "site"]
        self.order_fields(["factor", "level", "reason", "password"])


class LookupForm(forms.Form):
    hospital_id = forms.CharField(label="Hospital patient id", max_length=100)
