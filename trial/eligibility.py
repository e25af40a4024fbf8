"""Eligibility: every inclusion criterion met and no exclusion criterion present."""


def eligibility_problems(criteria: list[dict], answers: dict) -> list[str]:
    """Return what stands in the way of eligibility, each naming its criterion; empty means eligible."""
    problems = []
    known = {criterion["code"] for criterion in criteria}
    for code in sorted(set(answers) - known):
        problems.append(f"Unknown eligibility criterion {code!r}.")
    for criterion in criteria:
        code, text = criterion["code"], criterion["text"]
        answer = answers.get(code)
        if not isinstance(answer, bool):
            problems.append(f"Criterion {code} ({text}) was not answered yes or no.")
        elif criterion["kind"] == "inclusion" and not answer:
            problems.append(f"Inclusion criterion {code} is not met: {text}.")
        elif criterion["kind"] == "exclusion" and answer:
            problems.append(f"Exclusion criterion {code} applies: {text}.")
    return problems
