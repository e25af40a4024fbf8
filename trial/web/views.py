"""Pages for people. Every view asks the same services as the API, so the server enforces roles."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from trial.models import AuditVerification, Site
from trial.roles import Role, has_role, roles_of
from trial.services import corrections, enrolment, randomisation, staff
from trial.services.access import allocations_visible_to, can_see_allocation, patients_visible_to, site_ids_of
from trial.services.audit_requests import audit_entries_visible_to, request_verification
from trial.services.errors import TrialError
from trial.services.trials import default_trial

from .forms import CorrectionForm, EnrolmentForm, LookupForm, SignatureForm, StrataForm

STAFF = (Role.COORDINATOR, Role.PHYSICIAN, Role.STATISTICIAN, Role.DATA_MANAGER)


def _require(request, *roles):
    if not has_role(request.user, *roles):
        raise PermissionDenied("Your role may not open this page.")


def _trial_or_none():
    try:
        return default_trial()
    except TrialError:
        return None


@login_required
def home(request):
    trial = _trial_or_none()
    visible = patients_visible_to(request.user).select_related("site", "physician")
    context = {"trial": trial, "roles": roles_of(request.user)}
    if has_role(request.user, *STAFF) and Role.PANEL not in roles_of(request.user):
        context["awaiting"] = visible.filter(status="enrolled")[:20]
        context["recent"] = visible.filter(status="randomised").order_by("-allocation__randomised_at")[:10]
        context["counts"] = {"enrolled": visible.count(), "randomised": visible.filter(status="randomised").count()}
    if has_role(request.user, Role.DATA_MANAGER):
        context["verification"] = AuditVerification.objects.first()
    return render(request, "trial/home.html", context)


@login_required
def patient_list(request):
    _require(request, *STAFF)
    patients = patients_visible_to(request.user).select_related("site", "physician", "allocation")
    status = request.GET.get("status")
    if status in ("enrolled", "randomised"):
        patients = patients.filter(status=status)
    visible_arms = set(allocations_visible_to(request.user).values_list("pk", flat=True))  # one query, not one a row
    rows = [(p, p.allocation if p.pk in visible_arms else None) for p in patients]
    return render(request, "trial/patient_list.html", {"rows": rows, "status": status})


@login_required
def patient_enrol(request):
    _require(request, Role.COORDINATOR)
    trial = _trial_or_none()
    if trial is None:
        messages.error(request, "No trial is open for enrolment.")
        return redirect("home")
    sites = Site.objects.filter(pk__in=site_ids_of(request.user), trials=trial)
    form = EnrolmentForm(request.POST or None, trial=trial, sites=sites)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        physician = enrolment.physicians_at(data["site"]).filter(username=data["physician"]).first()
        try:
            patient = enrolment.enrol(
                actor=request.user,
                trial=trial,
                site=data["site"],
                hospital_id=data["hospital_id"],
                physician=physician,
                eligibility=form.eligibility(),
                consent_date=data["consent_date"],
                consent_form_version=data["consent_form_version"],
                strata=form.strata(),
            )
        except TrialError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Enrolled as {patient.trial_number}. Randomise when ready.")
            return redirect("patient-detail", pk=patient.pk)
    return render(request, "trial/patient_enrol.html", {"form": form, "trial": trial})


@login_required
def patient_detail(request, pk):
    _require(request, *STAFF)
    patient = get_object_or_404(patients_visible_to(request.user).select_related("site", "physician"), pk=pk)
    allocation = patient.allocation if can_see_allocation(request.user, patient) else None
    context = {
        "patient": patient,
        "strata": patient.effective_strata(),
        "allocation": allocation,
        "corrections": allocation.corrections.select_related("corrected_by") if allocation else [],
        "randomise_form": SignatureForm(),
        "correction_form": CorrectionForm(trial=patient.trial),
        "can_randomise": has_role(request.user, Role.COORDINATOR) and patient.status == "enrolled",
        "can_correct": has_role(request.user, Role.DATA_MANAGER) and allocation is not None,
        "strata_form": StrataForm(trial=patient.trial, initial_strata=patient.strata),
    }
    return render(request, "trial/patient_detail.html", context)


def _patient_action(request, pk, role, make_form, act, invalid_message=None):
    """POST handler shared by the patient page's signed forms: check role and form, call the service,
    report the outcome as a message and return to the patient page."""
    _require(request, role)
    patient = get_object_or_404(patients_visible_to(request.user), pk=pk)
    form = make_form(patient)
    if not form.is_valid():
        messages.error(request, invalid_message or " ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        try:
            messages.success(request, act(patient, form))
        except TrialError as exc:
            messages.error(request, exc.message)
    return redirect("patient-detail", pk=pk)


@login_required
@require_POST
def patient_randomise(request, pk):
    def act(patient, form):
        allocation = randomisation.randomise(
            actor=request.user, patient=patient, password=form.cleaned_data["password"]
        )
        return f"{patient.trial_number} randomised: {allocation.arm_label}."

    return _patient_action(request, pk, Role.COORDINATOR, lambda patient: SignatureForm(request.POST), act,
                           invalid_message="Enter your password to sign the randomisation.")  # fmt: skip


@login_required
@require_POST
def patient_correct(request, pk):
    def act(patient, form):
        data = form.cleaned_data
        corrections.correct_stratum(actor=request.user, patient=patient, factor=data["factor"], level=data["level"],
                                    reason=data["reason"], password=data["password"])  # fmt: skip
        return f"Correction of {data['factor']} recorded and signed."

    return _patient_action(request, pk, Role.DATA_MANAGER,
                           lambda patient: CorrectionForm(request.POST, trial=patient.trial), act)  # fmt: skip


@login_required
@require_POST
def patient_strata(request, pk):
    def act(patient, form):
        enrolment.update_strata(actor=request.user, patient=patient, strata=form.strata(),
                                reason=form.cleaned_data["reason"])  # fmt: skip
        return "Strata changed; the change and its reason are in the audit trail."

    return _patient_action(request, pk, Role.COORDINATOR,
                           lambda patient: StrataForm(request.POST, trial=patient.trial, initial_strata=patient.strata),
                           act)  # fmt: skip


@login_required
def patient_lookup(request):
    _require(request, Role.COORDINATOR, Role.DATA_MANAGER)
    form = LookupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = enrolment.find_by_hospital_id(
                actor=request.user, trial=default_trial(), hospital_id=form.cleaned_data["hospital_id"]
            )
        except TrialError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("patient-detail", pk=patient.pk)
    return render(request, "trial/patient_lookup.html", {"form": form})


@login_required
def audit_list(request):
    _require(request, Role.DATA_MANAGER, Role.STATISTICIAN)
    entries = audit_entries_visible_to(request.user).order_by("-seq")
    model = request.GET.get("model")
    if model:
        entries = entries.filter(model=model)
    return render(
        request,
        "trial/audit_list.html",
        {
            "entries": entries[:200],
            "model": model,
            "verifications": AuditVerification.objects.select_related("requested_by")[:5],
        },
    )


@login_required
@require_POST
def audit_verify(request):
    try:
        request_verification(request.user)
    except TrialError as exc:
        raise PermissionDenied(exc.message) from exc
    messages.info(request, "Verification queued; a background worker recomputes the hash chain.")
    return redirect("audit-list")


@login_required
def staff_experience(request):
    """Data managers record each physician's years of experience (an endpoint covariate), with a reason."""
    _require(request, Role.DATA_MANAGER)
    if request.method == "POST":
        user_id = request.POST.get("user", "")
        user = get_object_or_404(staff.physicians(), pk=int(user_id) if user_id.isdigit() else 0)
        try:
            staff.set_experience(actor=request.user, user=user, years=request.POST.get("years"),
                                 reason=request.POST.get("reason", ""))  # fmt: skip
        except TrialError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Experience of {user.get_full_name() or user.get_username()} recorded.")
        return redirect("staff-experience")
    return render(request, "trial/staff_experience.html", {"rows": staff.experience_table()})
