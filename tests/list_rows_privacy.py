"""Row factories of the data-subject request lists (tests/list_rows.py's registry uses them)."""

from __future__ import annotations


def _erasures(w, start, stop):
    """Erasure certificates requested by the platform admin (the only persona that sees them)."""
    from apps.privacy.models import ErasureCertificate

    ErasureCertificate.objects.bulk_create(
        ErasureCertificate(
            key_digest=f"{i:064x}",
            requested_by=w.admin,
            state="succeeded",
            progress=1.0,
            counts={"offline": {"removed": i}},
            document_sha256=f"{i:064x}",
        )  # fmt: skip
        for i in range(start, stop)
    )
