"""Writes of incident webhooks: create, update (rotating the secret), delete.

The secret is stored encrypted in the vault (a `VaultBlob`, purpose ``webhook-secret``) and never
shown again, except once: a secret the portal generated is returned by the call that made it.
Creation, changes, rotation and deletion are audited with the actor (`audit_event`); the secret
itself is never written to the audit trail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import secrets
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core import vault
from apps.core.audit import audit_event
from apps.core.models import VaultBlob
from apps.monitoring.models import IncidentWebhook
from apps.monitoring.webhooks.selectors import _require_admin

BLOB_PURPOSE = "webhook-secret"
SECRET_MIN_CHARS = 16
SECRET_MAX_CHARS = 512
AUDITED = ("name", "url", "events", "min_severity", "active")


@dataclasses.dataclass
class WebhookWrite:
    """The webhook written, and the secret the portal generated for it (None otherwise): shown once."""

    webhook: IncidentWebhook
    generated_secret: str | None = None


def webhook_create(
    *,
    actor,
    name: str,
    url: str,
    events: list[str],
    min_severity: str = "warning",
    active: bool = True,
    secret: str | None = None,
    request=None,
) -> WebhookWrite:
    """A new webhook; no `secret` (or an empty one): the portal generates one and returns it once."""
    _require_admin(actor, one=False)
    fields = _clean(name=name, url=url, events=events, min_severity=min_severity, active=active)
    generated = None if secret else secrets.token_urlsafe(32)
    plaintext = _clean_secret(secret) if secret else generated
    with _secret_blob(plaintext) as record, transaction.atomic():
        if IncidentWebhook.objects.filter(name=fields["name"]).exists():
            raise ValidationError({"name": ["An incident webhook with this name already exists."]})
        webhook = IncidentWebhook.objects.create(**fields, secret=record(), created_by=actor)
        audit_event(
            actor=actor, event="webhook.create", obj=webhook, request=request,
            data={"after": _audited(webhook), "secret": "generated" if generated else "given"},
        )  # fmt: skip
    return WebhookWrite(webhook, generated)


def webhook_update(*, webhook: IncidentWebhook, actor, request=None, **changes) -> WebhookWrite:
    """Change some of `name, url, events, min_severity, active`; `secret` rotates it (an empty
    string: the portal generates a new one and returns it once). The old secret's blob goes."""
    _require_admin(actor, one=True)
    unknown = sorted(set(changes) - {*AUDITED, "secret"})
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    before = _audited(webhook)
    fields = _clean(**{**before, **{k: v for k, v in changes.items() if k in AUDITED}})
    rotate = changes.get("secret") is not None
    generated = None if not rotate or changes["secret"] else secrets.token_urlsafe(32)
    plaintext = (_clean_secret(changes["secret"]) if changes["secret"] else generated) if rotate else None
    with _secret_blob(plaintext) as record, transaction.atomic():
        if IncidentWebhook.objects.filter(name=fields["name"]).exclude(pk=webhook.pk).exists():
            raise ValidationError({"name": ["An incident webhook with this name already exists."]})
        for key, value in fields.items():
            setattr(webhook, key, value)
        old = webhook.secret
        if rotate:
            webhook.secret = record()
            webhook.secret_rotated_at = timezone.now()
        webhook.save()
        if rotate:
            # Nothing points at the old blob any more: its row goes now, its ciphertext after commit.
            vault.blob_delete(old)
            audit_event(
                actor=actor, event="webhook.secret_rotate", obj=webhook, request=request,
                data={"secret": "generated" if generated else "given"},
            )  # fmt: skip
        after = _audited(webhook)
        if after != before:
            audit_event(
                actor=actor, event="webhook.update", obj=webhook, request=request,
                data={"before": before, "after": after},
            )  # fmt: skip
    return WebhookWrite(webhook, generated)


@transaction.atomic
def webhook_delete(*, webhook: IncidentWebhook, actor, request=None) -> None:
    """Delete the webhook with its delivery log, and its secret's blob."""
    _require_admin(actor, one=True)
    audit_event(actor=actor, event="webhook.delete", obj=webhook, request=request, data={"before": _audited(webhook)})
    blob = webhook.secret
    webhook.delete()
    vault.blob_delete(blob)


def webhook_secret(webhook: IncidentWebhook) -> str:
    """The plaintext secret, for signing (deliveries only; never returned by the API)."""
    return vault.blob_read(webhook.secret, max_bytes=SECRET_MAX_CHARS * 4).decode()


# --- validation ------------------------------------------------------------------------------------


def _clean(*, name, url, events, min_severity, active) -> dict:
    errors: dict[str, list[str]] = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > 100:
        errors["name"] = ["Give a name of 1 to 100 characters."]
    url = url.strip() if isinstance(url, str) else ""
    problem = url_problem(url)
    if problem:
        errors["url"] = [problem]
    if not isinstance(events, list | tuple) or not events or any(e not in IncidentWebhook.EVENTS for e in events):
        errors["events"] = [f"Choose one or more of: {', '.join(IncidentWebhook.EVENTS)}."]
    if min_severity not in IncidentWebhook.SEVERITIES:
        errors["min_severity"] = [f"Choose one of: {', '.join(IncidentWebhook.SEVERITIES)}."]
    if not isinstance(active, bool):
        errors["active"] = ["Give true or false."]
    if errors:
        raise ValidationError(errors)
    ordered = [e for e in IncidentWebhook.EVENTS if e in events]  # no duplicates, one order
    return {"name": name, "url": url, "events": ordered, "min_severity": min_severity, "active": active}


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's target (None: it can): http or https, with a host."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        scheme, host = "", None
    if not url or scheme not in ("http", "https") or not host or len(url) > 500:
        return "Give an http:// or https:// URL with a host (at most 500 characters)."
    return None


def _clean_secret(secret) -> str:
    if not isinstance(secret, str) or not SECRET_MIN_CHARS <= len(secret) <= SECRET_MAX_CHARS:
        raise ValidationError(
            {"secret": [f"Give a secret of {SECRET_MIN_CHARS} to {SECRET_MAX_CHARS} characters, or none to get one."]}
        )
    return secret


@contextlib.contextmanager
def _secret_blob(plaintext: str | None) -> Iterator[Callable[[], VaultBlob]]:
    """Encrypt `plaintext` before the transaction; inside it, `record()` creates the blob's row.
    If the block fails, the ciphertext is discarded (blob_write's contract). None: nothing to store."""
    if plaintext is None:
        yield lambda: None
        return
    name, result = vault.blob_write(io.BytesIO(plaintext.encode()), purpose=BLOB_PURPOSE)
    try:
        yield lambda: vault.blob_record(name, result, purpose=BLOB_PURPOSE)
    except BaseException:
        vault.blob_discard(name)
        raise


def _audited(webhook: IncidentWebhook) -> dict:
    return {key: getattr(webhook, key) for key in AUDITED}
