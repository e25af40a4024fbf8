"""Recompute the stored chain, including its head, so truncation of the newest entries is caught too."""

from . import chain


def verify_stored_chain() -> chain.Verification:
    from trial.models import AuditChainHead, AuditEntry

    entries = (entry.as_chain_dict() for entry in AuditEntry.objects.order_by("seq").iterator(chunk_size=2000))
    result = chain.verify(entries)
    if not result.ok:
        return result
    head = AuditChainHead.objects.filter(pk=1).first() or AuditChainHead()
    if head.last_seq != result.checked:
        return chain.Verification(
            False,
            result.checked,
            result.checked + 1,
            f"entries after #{result.checked} are missing (the chain head records #{head.last_seq})",
        )
    last = AuditEntry.objects.filter(seq=head.last_seq).values_list("entry_hash", flat=True).first()
    if head.last_seq and last != head.last_hash:
        return chain.Verification(
            False,
            result.checked,
            head.last_seq,
            f"entry #{head.last_seq}'s hash differs from the hash the chain head recorded",
        )
    return result
