"""The demo trial's definition: used by `seed_demo` and as the default design of `simulate_randomisation`."""

from trial.randomisation import Design, Factor

SITES = [
    ("AAR", "Aarhus University Hospital (demo)"),
    ("ODE", "Odense University Hospital (demo)"),
    ("CPH", "Copenhagen University Hospital (demo)"),
]

STRATA_FACTORS = [
    {"name": "site", "label": "Site", "levels": [{"code": code, "label": name} for code, name in SITES]},
    {
        "name": "subsite",
        "label": "Tumour subsite",
        "levels": [
            {"code": "oropharynx", "label": "Oropharynx"},
            {"code": "larynx", "label": "Larynx"},
            {"code": "hypopharynx", "label": "Hypopharynx"},
            {"code": "oral_cavity", "label": "Oral cavity"},
        ],
    },
    {
        "name": "t_stage",
        "label": "T-stage group",
        "levels": [{"code": "T1-2", "label": "T1–2"}, {"code": "T3-4", "label": "T3–4"}],
    },
]

ELIGIBILITY_CRITERIA = [
    {
        "code": "I1",
        "kind": "inclusion",
        "text": "Squamous cell carcinoma of the head and neck, histologically confirmed",
    },
    {"code": "I2", "kind": "inclusion", "text": "Planned for curative-intent radiotherapy with FDG-PET/CT planning"},
    {"code": "I3", "kind": "inclusion", "text": "Age 18 years or older"},
    {"code": "E1", "kind": "exclusion", "text": "Previous radiotherapy to the head and neck region"},
    {"code": "E2", "kind": "exclusion", "text": "Tumour fully excised before radiotherapy (no macroscopic GTV)"},
]

CONSENT_FORM_VERSIONS = ["v1.0", "v1.1"]
BLOCK_SIZES = (2, 4, 6)


def design(method: str, block_sizes=BLOCK_SIZES, preferred_arm_probability: float = 0.8) -> Design:
    return Design(
        method=method,
        factors=tuple(Factor(f["name"], tuple(level["code"] for level in f["levels"])) for f in STRATA_FACTORS),
        block_sizes=tuple(block_sizes),
        preferred_arm_probability=preferred_arm_probability,
    )
