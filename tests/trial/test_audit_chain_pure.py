"""The hash chain detects changed, removed and reordered entries."""

from trial.audit import chain


def _build(n: int) -> list[dict]:
    entries, prev = [], chain.GENESIS
    for seq in range(1, n + 1):
        entry = {
            "seq": seq, "timestamp": f"2026-12-04T10:00:0{seq % 10}+00:00", "actor_id": 1,
            "actor_username": "dm", "action": "update", "model": "trial.patient", "object_pk": "1",
            "object_repr": "HN-0001", "changes": {"status": ["enrolled", "randomised"]}, "reason": "",
            "reveals_allocation": False, "prev_hash": prev,
        }  # fmt: skip
        entry["entry_hash"] = chain.entry_hash(entry, prev)
        prev = entry["entry_hash"]
        entries.append(entry)
    return entries


def test_an_untouched_chain_verifies():
    assert chain.verify(_build(5)) == chain.Verification(True, 5)


def test_a_changed_value_is_caught_at_its_entry():
    entries = _build(5)
    entries[2]["changes"] = {"status": ["enrolled", "withdrawn"]}
    result = chain.verify(entries)
    assert not result.ok and result.first_broken_seq == 3 and "do not match" in result.problem


def test_a_removed_entry_is_caught():
    entries = _build(5)
    del entries[1]
    result = chain.verify(entries)
    assert not result.ok and result.first_broken_seq == 2 and "missing" in result.problem


def test_a_rehashed_forgery_breaks_the_next_link():
    entries = _build(5)
    entries[1]["reason"] = "forged"
    entries[1]["entry_hash"] = chain.entry_hash(entries[1], entries[1]["prev_hash"])
    result = chain.verify(entries)
    assert not result.ok and result.first_broken_seq == 3 and "does not link" in result.problem
