"""Writes for the catalog. Every function that changes or reads out an object checks the actor's
permissions itself, so the API, the browser, the admin, tasks and scripts all get the same rules.

Errors are the domain's (`apps.core.errors`) or Django's `ValidationError({field: [...]})`; sharing
goes through `apps.core.sharing` (the one share service), not through this module."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog.artifacts import inspect_onnx, inspect_safetensors, local_path
from apps.catalog.models import CARD_SECTIONS, Alias, ModelCard, ModelVersion, RegisteredModel, alias_validator
from apps.catalog.validation import clean_lineage, clean_metrics, clean_onnx_parity, clean_tags
from apps.core import permissions, residency, vault
from apps.core.audit import audit_event
from apps.core.errors import Conflict, Forbidden, IntegrityFailure, TooLarge
from apps.core.names import check_name
from apps.core.sharing import share_with_team_on_create, team_for_create

# New aliases with these names start protected: only an approved promotion creates them.
PROTECTED_BY_DEFAULT = frozenset({"production", "champion"})
# ModelVersion.source's length.
SOURCE_MAX_CHARS = 1000
# Where a model's name may not be a fixed word of the routes (`/models/new/`).
NAME_ROUTE_PREFIXES = ("models/", "api/v1/models/")


# --- registered models ----------------------------------------------------------------------


@transaction.atomic
def model_create(
    *, actor, name: str, description: str = "", tags=None, team: str | None = None, region: str | None = "default"
) -> RegisteredModel:
    """Register a model owned by `actor`. `team` is the slug of a team the actor is in: the team
    becomes a viewer of the model (docs/SECURITY.md); editors only through an explicit share.
    `region` pins its artifacts to one of the configured regions ("default" = unpinned); it never
    changes afterwards."""
    permissions.require(actor, "add", RegisteredModel)
    check_name(name, route_prefixes=NAME_ROUTE_PREFIXES)
    region = residency.clean_region(region)
    found_team = team_for_create(actor=actor, slug=team)
    if RegisteredModel.objects.filter(name=name).exists():
        # code "exists": the MLflow-compatible API answers RESOURCE_ALREADY_EXISTS for it.
        taken = ValidationError(f"A model called {name!r} already exists; pick another name.", code="exists")
        raise ValidationError({"name": [taken]})
    model = RegisteredModel.objects.create(
        name=name,
        description=(description or "").strip(),
        tags=clean_tags(tags),
        owner=actor,
        team=found_team,
        region=region,
    )
    permissions.grant_owner(model)
    share_with_team_on_create(model, found_team)
    ModelCard.objects.create(model=model, updated_by=actor)
    return model


@transaction.atomic
def model_update(*, model: RegisteredModel, actor, **changes) -> RegisteredModel:
    permissions.require(actor, "change", model)
    unknown = set(changes) - {"description", "tags"}
    if unknown:
        raise ValidationError({f: ["This field cannot be changed."] for f in unknown})
    if "description" in changes:
        model.description = (changes["description"] or "").strip()
    if "tags" in changes:
        model.tags = clean_tags(changes["tags"])
    model.save()
    return model


@transaction.atomic
def model_archive(*, model: RegisteredModel, actor) -> RegisteredModel:
    """DELETE archives: versions and artifacts stay for lineage and audit; no new versions."""
    permissions.require(actor, "delete", model)
    if model.archived_at is None:
        model.archived_at = timezone.now()
        model.save(update_fields=["archived_at", "updated_at"])
    return model


@transaction.atomic
def card_update(*, model: RegisteredModel, actor, **sections) -> ModelCard:
    permissions.require(actor, "change", model)
    allowed = {field for field, _ in CARD_SECTIONS}
    unknown = set(sections) - allowed
    if unknown:
        raise ValidationError({f: ["Not a model card section."] for f in unknown})
    card, _ = ModelCard.objects.get_or_create(model=model)
    for field, value in sections.items():
        if value is not None and not isinstance(value, str):
            raise ValidationError({field: ["Give text."]})
        if value is not None and len(value) > 20000:
            raise ValidationError({field: ["At most 20,000 characters."]})
        setattr(card, field, (value or "").strip())
    card.updated_by = actor
    card.save()
    return card


# --- versions -------------------------------------------------------------------------------


def version_register(
    *,
    model: RegisteredModel,
    actor,
    artifact: BinaryIO,
    artifact_size: int,
    state_dict: BinaryIO | None = None,
    state_dict_size: int | None = None,
    description: str = "",
    tags=None,
    metrics=None,
    lineage=None,
    framework: str = "",
    onnx_parity: dict | None = None,
    region: str | None = None,
    source: str = "",
) -> ModelVersion:
    """Validate, encrypt and record a new immutable version. On any failure nothing is left behind.

    `source` is the URI the file was read from when it came through the MLflow-compatible API
    (a run artifact's `mlflow-artifacts:/...`), kept to answer MLflow's `source`.

    `onnx_parity` is the ONNX Runtime parity check of a torch export (see `clean_onnx_parity`);
    leave it out for a file nothing checked. `region` is the residency region of what the version
    was built from (a training job's run): the version is pinned to it, or to the model's region.
    `RegionMismatch` (409) when both are pinned and differ, `ResidencyError` (403) when this
    portal may not store artifacts of that region; both audited."""
    permissions.require(actor, "change", model)
    if model.archived_at is not None:
        raise Conflict(f"Model {model.name!r} is archived; it takes no new versions.")
    run_id = (lineage or {}).get("run_id") if isinstance(lineage, dict) else None
    version_region = version_region_for(model, region or residency.source_region("run", run_id), actor=actor)
    limit = settings.CATALOG_MAX_ARTIFACT_BYTES
    for label, size in (("artifact", artifact_size), ("state dict", state_dict_size)):
        if size is not None and size > limit:
            raise TooLarge(f"The {label} is {size:,} bytes; the limit is {limit:,} bytes (CATALOG_MAX_ARTIFACT_BYTES).")
    if artifact_size == 0:
        raise ValidationError({"artifact": ["The artifact file is empty."]})
    if not isinstance(source, str) or len(source) > SOURCE_MAX_CHARS:
        raise ValidationError({"source": [f"Give the source as text of at most {SOURCE_MAX_CHARS} characters."]})
    cleaned = {
        "source": source.strip(),
        "description": (description or "").strip(),
        "tags": clean_tags(tags),
        "metrics": clean_metrics(metrics),
        **clean_lineage(lineage),
        "onnx_parity": clean_onnx_parity(onnx_parity),
    }
    with local_path(artifact) as path:
        info = inspect_onnx(path, framework=framework)
    signature = dict(info.signature)
    if state_dict is not None:
        signature["state_dict"] = inspect_safetensors(state_dict, state_dict_size or 0)
    stored: list[str] = []
    try:
        # Encrypt before the transaction: a large upload must not hold the database lock.
        artifact.seek(0)
        written = [vault.blob_write(artifact, purpose="catalog.onnx")]
        stored.append(written[0][0])
        if state_dict is not None:
            state_dict.seek(0)
            written.append(vault.blob_write(state_dict, purpose="catalog.safetensors"))
            stored.append(written[1][0])
        with transaction.atomic():
            locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
            if locked.archived_at is not None:
                raise Conflict(f"Model {model.name!r} was archived during the upload; it takes no new versions.")
            blob = vault.blob_record(*written[0], purpose="catalog.onnx")
            sd_blob = vault.blob_record(*written[1], purpose="catalog.safetensors") if len(written) > 1 else None
            version = ModelVersion.objects.create(
                model=locked,
                version=locked.latest_version + 1,
                artifact=blob,
                state_dict=sd_blob,
                signature=signature,
                framework=info.framework,
                opset=info.opset,
                producer=info.producer,
                region=version_region,
                created_by=actor,
                **cleaned,
            )
            locked.latest_version = version.version
            locked.latest_version_at = version.created_at
            locked.framework = info.framework
            locked.save(update_fields=["latest_version", "latest_version_at", "framework", "updated_at"])
            audit_event(
                actor=actor,
                event="artifact.upload",
                obj=version,
                data={
                    "model": locked.name,
                    "version": version.version,
                    "sha256": blob.sha256,
                    "size": blob.plaintext_size,
                },
            )
    except BaseException:
        for name in stored:
            vault.blob_discard(name)
        raise
    model.latest_version, model.framework = locked.latest_version, locked.framework
    return version


def version_region_for(model: RegisteredModel, region: str | None, *, actor) -> str:
    """The region a new version of `model` built from data of `region` is pinned to; refuses (audited)
    a cross-region registration and a store this portal may not hold."""
    source = region or residency.UNPINNED
    if residency.is_pinned(model.region) and residency.is_pinned(source) and source != model.region:
        residency.refuse(
            actor=actor,
            obj=model,
            region=source,
            action="register",
            mismatch=True,
            why=f"The version was built from data pinned to region {source!r}, but model {model.name!r} is pinned "
            f"to region {model.region!r}. Register it in a model of region {source!r} (or an unpinned one).",
        )
    pinned = source if residency.is_pinned(source) else model.region
    residency.check_held_here(pinned, actor=actor, obj=model, action="store model artifacts of")
    return pinned


@transaction.atomic
def version_update(*, version: ModelVersion, actor, changes: dict) -> ModelVersion:
    """Only description, tags and metrics may change; anything else is refused with 409."""
    permissions.require(actor, "change", version.model)
    frozen = set(changes) - {"description", "tags", "metrics"}
    if frozen:
        raise Conflict(f"Versions are immutable: {', '.join(sorted(frozen))} cannot change; register a new version.")
    if "description" in changes:
        version.description = (changes["description"] or "").strip()
    if "tags" in changes:
        version.tags = clean_tags(changes["tags"])
    if "metrics" in changes:
        version.metrics = clean_metrics(changes["metrics"])
    version.save()
    return version


def artifact_open(
    *, version: ModelVersion, actor, which: str = "artifact", request=None
) -> tuple[Iterator[bytes], int, str]:
    """Check permission, start decrypting and audit the download. Returns (chunks, size, filename).

    The first chunk is decrypted here, so a small tampered artifact is refused before any byte
    is sent: `IntegrityFailure` (500), audited as artifact.integrity_error with the vault's reason.
    """
    permissions.require(actor, "view", version.model)
    residency.check_held_here(version.region, actor=actor, obj=version, action="download", request=request)
    blob = version.artifact if which == "artifact" else version.state_dict
    if blob is None:
        raise ValidationError({"which": ["This version has no PyTorch state dict."]})
    filename = version.artifact_filename if which == "artifact" else version.state_dict_filename
    try:
        chunks = vault.blob_chunks(blob)
        first = next(chunks, b"")
    except IntegrityFailure as exc:  # the vault's IntegrityError: tampered, truncated or missing
        audit_event(
            actor=actor,
            event="artifact.integrity_error",
            obj=version,
            data={"which": which, "error": str(exc)},
            request=request,
        )
        raise IntegrityFailure(
            f"The stored {which.replace('_', ' ')} of {version} failed its integrity check and was not sent: "
            "it was changed or damaged in storage. Tell a platform admin (the event is in the audit trail), "
            "restore it from backup or register the version again."
        ) from exc
    audit_event(
        actor=actor,
        event="artifact.download",
        obj=version,
        data={"model": version.model.name, "version": version.version, "which": which, "sha256": blob.sha256},
        request=request,
    )
    return (itertools.chain([first], chunks) if first else iter(())), blob.plaintext_size, filename


# --- aliases --------------------------------------------------------------------------------


class ApprovedPromotion(Protocol):
    """What `alias_move` needs from a promotion object: an approved `apps.approvals` promotion
    request (or the rollback ticket `promotion_rollback` makes after its own checks)."""

    pk: Any
    is_approved: bool  # decided and approved, not yet used or rolled back
    model_version: ModelVersion  # the version to move to
    target_alias: str


def alias_move(
    *,
    model: RegisteredModel,
    alias: str,
    version: ModelVersion,
    actor,
    promotion: ApprovedPromotion | None = None,
    protected: bool | None = None,
) -> Alias:
    """Point `alias` at `version`: the one way any alias moves (API, browser, admin, approvals).

    A protected alias (or a new one named production/champion) moves only with an approved
    `promotion` for exactly this version and alias; anything else is refused with 409 naming
    POST /api/v1/promotions/. A new alias with another name may be created protected (`protected=True`).

    Without a promotion the actor needs `change` on the model. With one, the right to move comes
    from the promotion (its approvers decided; approvers need not be editors of the model): it is
    checked to be approved and for exactly this version and alias, whatever the alias's protection.
    A version pinned to a region never becomes what an endpoint of another region follows (409,
    audited `residency.refused`, before anything changes: apps/core/residency.check_alias_move).
    """
    if promotion is None:
        permissions.require(actor, "change", model)
    try:
        alias_validator(alias)
    except ValidationError as exc:
        raise ValidationError({"alias": exc.messages}) from None
    if version.model_id != model.pk:
        raise ValidationError({"version": [f"Version {version.version} belongs to another model."]})
    if model.archived_at is not None:
        raise Conflict(f"Model {model.name!r} is archived; its aliases no longer move.")
    # Residency (409, audited): no endpoint of another region may follow the alias to a pinned version.
    residency.check_alias_move(actor=actor, model=model, alias=alias, version=version)
    with transaction.atomic():
        current = Alias.objects.select_for_update().filter(model=model, name=alias).first()
        if current is not None and protected is not None and protected != current.protected:
            raise Conflict(
                f'Change the protection with PATCH /api/v1/models/{model.name}/aliases/{alias} {{"protected": ...}}, '
                "not while moving the alias."
            )
        if current is not None:
            is_protected = needs_promotion = current.protected
        else:  # a new pointer moves nothing, so an editor may create it protected; default names need a promotion
            needs_promotion = alias in PROTECTED_BY_DEFAULT
            is_protected = needs_promotion or bool(protected)
        if needs_promotion or promotion is not None:
            _check_promotion(model, alias, version, promotion, exists=current is not None)
        previous = current.version.version if current is not None else None
        if current is None:
            current = Alias.objects.create(
                model=model,
                name=alias,
                version=version,
                protected=is_protected,
                moved_by=actor,
                promotion_ref=str(promotion.pk) if promotion is not None else "",
            )
        else:
            current.version, current.moved_by = version, actor
            current.promotion_ref = str(promotion.pk) if promotion is not None else ""
            current.save()
        audit_event(
            actor=actor,
            event="alias.move",
            obj=current,
            data={
                "model": model.name,
                "alias": alias,
                "from_version": previous,
                "to_version": version.version,
                "protected": is_protected,
                "promotion": current.promotion_ref or None,
            },
        )
        RegisteredModel.objects.filter(pk=model.pk).update(updated_at=timezone.now())
    return current


def alias_needs_promotion(model: RegisteredModel, alias: str) -> bool:
    """Whether `alias` of `model` moves only through an approved promotion (the rule `alias_move`
    applies): it is protected, or it does not exist yet and is named production or champion.
    Lets a caller say so in its own terms before trying (the MLflow API's PERMISSION_DENIED)."""
    protected = Alias.objects.filter(model=model, name=alias).values_list("protected", flat=True).first()
    return protected if protected is not None else alias in PROTECTED_BY_DEFAULT


def _check_promotion(model: RegisteredModel, alias: str, version: ModelVersion, promotion, *, exists: bool) -> None:
    if promotion is None and exists:
        raise Conflict(f"Alias {alias!r} is protected. {promotion_hint(model, alias)}.")
    if promotion is None:
        raise Conflict(
            f"New aliases named {' or '.join(sorted(PROTECTED_BY_DEFAULT))} start protected, and a protected "
            f"alias is created only by an approved promotion. {promotion_hint(model, alias)}."
        )
    if not getattr(promotion, "is_approved", False):
        raise Conflict(f"The promotion for alias {alias!r} is not approved; it cannot move the alias.")
    if getattr(promotion, "target_alias", None) != alias or getattr(promotion, "model_version", None) != version:
        raise Conflict("The approved promotion is for another version or alias; it cannot move this one.")


def alias_delete(*, model: RegisteredModel, alias: str, actor) -> None:
    permissions.require(actor, "change", model)
    with transaction.atomic():
        current = Alias.objects.select_for_update().filter(model=model, name=alias).first()
        if current is None:
            raise ValidationError({"alias": [f"Model {model.name!r} has no alias {alias!r}."]})
        if current.protected:
            raise Conflict(f"Alias {alias!r} is protected. {promotion_hint(model, alias)}.")
        audit_event(
            actor=actor,
            event="alias.delete",
            obj=model,
            data={"model": model.name, "alias": alias, "from_version": current.version.version},
        )
        current.delete()


def promotion_hint(model: RegisteredModel, alias: str) -> str:
    """How a protected alias moves: an approved promotion request (shared/API.md)."""
    return (
        "It moves only through an approved promotion: file a request with POST /api/v1/promotions/ "
        f'{{"model": "{model.name}", "version": <n>, "target_alias": "{alias}", ...}} '
        "(or Request promotion on the version page)"
    )


def alias_set_protection(*, model: RegisteredModel, alias: str, protected: bool, actor) -> Alias:
    """Editors may protect an alias; only a platform admin may lift the protection (403 otherwise),
    so that owners cannot step around the approvals that protected aliases need. A refused lift
    is audited too (`alias.unprotect_refused`): it is what walking around a gate looks like."""
    permissions.require(actor, "change", model)
    if not protected and not permissions.is_platform_admin(actor):
        audit_event(actor=actor, event="alias.unprotect_refused", obj=model, data={"model": model.name, "alias": alias})
        raise Forbidden("Only a platform admin can lift an alias's protection.")
    with transaction.atomic():
        current = Alias.objects.select_for_update().filter(model=model, name=alias).first()
        if current is None:
            raise ValidationError({"alias": [f"Model {model.name!r} has no alias {alias!r}."]})
        if current.protected != protected:
            current.protected = protected
            current.save(update_fields=["protected"])
            audit_event(
                actor=actor,
                event="alias.protect" if protected else "alias.unprotect",
                obj=current,
                data={"model": model.name, "alias": alias},
            )
    return current
