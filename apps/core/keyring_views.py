"""The key ring page (platform admins; everyone else gets the 404 page).

It lists the key ids, which one is active, where the ring comes from and what each key protects
(never a key), and for an embedded ring offers "Rotate now": a POST that needs a fresh second
factor (step-up, as an approval decision does) and queues the rotation job; the page then shows
its progress (htmx polls the ring block while the job is live).
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import stepup
from apps.core import keyring_admin
from apps.core.errors import Conflict
from apps.core.models import KeyRotation

TRUE = ("on", "1", "true", "yes")


def keys_page(request):
    summary = keyring_admin.keyring_summary(request.user)
    rotation = summary["rotation"]
    context = {
        "summary": summary,
        "rotation": rotation,
        "running": rotation is not None and rotation.live,
        "recent": keyring_admin.rotations_recent(request.user),
        "final_states": KeyRotation.FINAL,
    }
    return render(request, "core/keys.html", context)


@require_POST
def keys_rotate(request):
    """Rotate now: refused at once when it cannot start, else a code first (step-up), then queued."""
    keyring_admin.require_admin(request.user)
    retire = str(request.POST.get("retire", "")).lower() in TRUE
    otp = request.POST.get("otp")
    try:
        keyring_admin.rotation_refusal()  # say so before asking for a code
        if not stepup.step_up_passed(request, otp, session=request.session, action=keyring_admin.STEP_UP_ACTION):
            summary = (
                "You are about to rotate the vault master key: a new key becomes active and every stored "
                "file's data key is re-wrapped under it"
                + (", then keys no file and no audit entry needs are dropped from the ring." if retire else ".")
            )
            return stepup.step_up_page(
                request,
                fields=request.POST.dict(),
                summary=summary,
                wrong_code=bool(otp),
                what="Key rotations",
                submit_label="Confirm and rotate the keys",
            )
        rotation = keyring_admin.key_rotation_request(actor=request.user, retire=retire, request=request)
    except Conflict as exc:
        messages.error(request, f"Not started: {exc.detail}")
    else:
        messages.success(request, f"Key rotation {rotation.pk} queued; this page shows its progress.")
    return redirect("core:keys")
