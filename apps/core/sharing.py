"""Sharing an owned object with users or teams: one form, one service pair, one page card, one API.

A kind's page wires it with one call and one include:

    model_share, model_unshare = sharing.share_page_views(
        lookup=selectors.model_for, detail_view=model_detail, detail_url="catalog:model-detail", key="name")
    context["sharing"] = sharing.sharing_context(obj, request.user, share_url=..., unshare_url=...)
    {% include "core/_sharing.html" %}

and its API with `apps.core.api.sharing.SharingView.as_view(lookup=selectors.model_for)`.

Roles are `permissions.ROLE_ACTIONS` (viewer = view, editor = view + change). Apps may offer extra
object permissions (`Grant`, e.g. a feature view's `view_pii`); only someone who holds an extra
permission may hand it on. Guardian permission rows are audited by auditlog; each share/unshare
also records one explicit `<model>.share` / `<model>.unshare` event with its actor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Value
from django.db.models.functions import Cast
from django.shortcuts import redirect
from django.views.decorators.http import require_POST
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from apps.accounts.models import Team
from apps.core import permissions
from apps.core.audit import audit_event
from apps.core.forms import BootstrapFormMixin, apply_validation_error
from apps.core.realtime import access_changed, group_name, user_access_group

ROLE_CHOICES = [("viewer", "viewer"), ("editor", "editor")]


@dataclass(frozen=True)
class Grant:
    """An extra object permission that may be shared alongside a role (e.g. ``view_pii``)."""

    codename: str
    label: str
    help_text: str = ""


def can_grant(actor, obj: models.Model, grant: Grant) -> bool:
    """Nobody hands on a right they do not hold themselves (an editor cannot give itself PII)."""
    return permissions.can(actor, "change", obj) and permissions.holds(actor, grant.codename, obj)


class SharingForm(BootstrapFormMixin, forms.Form):
    """A user (by username) or a team, a role, and one checkbox per extra grant offered."""

    user = forms.CharField(required=False, label="User", help_text="username")
    team = forms.ModelChoiceField(queryset=Team.objects.all(), required=False, empty_label="—")
    role = forms.ChoiceField(choices=ROLE_CHOICES, error_messages={"invalid_choice": "Choose viewer or editor."})

    def __init__(self, *args, grants: Sequence[Grant] = (), **kwargs):
        kwargs.setdefault("auto_id", "id_share_%s")
        super().__init__(*args, **kwargs)
        self.grants = list(grants)
        for grant in self.grants:
            self.fields[grant.codename] = forms.BooleanField(
                required=False, label=grant.label, help_text=grant.help_text
            )

    def clean(self):
        cleaned = super().clean()
        username, team = (cleaned.get("user") or "").strip(), cleaned.get("team")
        if "team" in self.errors:
            return cleaned
        if bool(username) == bool(team):
            raise forms.ValidationError("Choose a user or a team (one of them).")
        if username:
            user = get_user_model().objects.filter(username=username, is_active=True).first()
            if user is None:
                self.add_error("user", f"No active user {username!r}.")
            cleaned["user"] = user
        else:
            cleaned["user"] = None
        return cleaned

    def grant_fields(self) -> list:
        return [self[g.codename] for g in self.grants]

    def requested_grants(self) -> dict[str, bool]:
        return {g.codename: bool(self.cleaned_data.get(g.codename)) for g in self.grants}


def share_target_for(*, username: str | None = None, team_slug: str | None = None):
    """The (user, team) a share names: an active user by username or a team by slug, else a field error."""
    if bool(username) == bool(team_slug):
        raise ValidationError({"detail": ["Give exactly one of user or team."]})
    if username:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise ValidationError({"user": [f"No active user {username!r}."]})
        return user, None
    team = Team.objects.filter(slug=team_slug).select_related("group").first()
    if team is None:
        raise ValidationError({"team": [f"No team {team_slug!r}."]})
    return None, team


def team_for_create(*, actor, slug: str | None) -> Team | None:
    """The team an object is created for (`team=` on a create), which the actor must be in.

    Team sharing means one thing for every kind (docs/SECURITY.md): an object created for a team
    is shared with the team as **viewer**; the owner makes the team editor explicitly through the
    share service, like any other share."""
    if not slug:
        return None
    team = Team.objects.filter(slug=slug).select_related("group").first()
    if team is None:
        raise ValidationError({"team": [f"No team {slug!r}."]})
    if not permissions.team_member(actor, team):
        raise ValidationError({"team": [f"You are not a member of team {slug!r}; choose one of your teams."]})
    return team


def share_with_team_on_create(obj: models.Model, team: Team | None) -> None:
    """Called by a creating service, inside its transaction, after `grant_owner(obj)`: the team
    (already checked by `team_for_create`) becomes a viewer of `obj`."""
    if team is not None:
        permissions.share(obj, role="viewer", team=team)


def sharing_list(obj: models.Model, grants: Sequence[Grant] = ()) -> list[dict]:
    """Who besides the owner holds access to `obj`, as the sharing API lists it."""
    listing = sharing_of(obj, grants)
    rows = [
        {"user": u["slug"], "role": u["role"], "grants": [g.codename for g in u["grants"]]} for u in listing["users"]
    ]
    rows += [
        {"team": t["slug"], "role": t["role"], "grants": [g.codename for g in t["grants"]]} for t in listing["teams"]
    ]
    return rows


def _target(user, team) -> dict:
    return {"user": user.username} if user is not None else {"team": team.slug}


def _event(obj: models.Model, verb: str) -> str:
    return f"{obj._meta.model_name}.{verb}"


def share_object(
    *, obj: models.Model, actor, role: str, user=None, team=None,
    grants: Sequence[Grant] = (), requested: dict[str, bool] | None = None, request=None,
) -> None:  # fmt: skip
    """Give `user` or `team` `role` on `obj` (re-sharing sets the role; editor -> viewer downgrades).

    `requested` maps each offered grant's codename to True (grant) or False (revoke); grants the
    actor does not hold cannot be given, and are left untouched when not asked for.
    """
    permissions.require(actor, "change", obj)
    if (user is None) == (team is None):
        raise ValidationError("Choose a user or a team (one of them).")
    if user is not None and user.pk == getattr(obj, "owner_id", None):
        raise ValidationError({"user": ["The owner already has full access."]})
    if role not in permissions.ROLE_ACTIONS:
        raise ValidationError({"role": ["Choose viewer or editor."]})
    requested = requested or {}
    offered = {g.codename: g for g in grants}
    unknown = set(requested) - set(offered)
    if unknown:
        raise ValidationError(f"Cannot share {', '.join(sorted(unknown))} on this {obj._meta.verbose_name}.")
    changes: dict[str, bool] = {}
    for codename, wanted in requested.items():
        allowed = can_grant(actor, obj, offered[codename])
        if wanted and not allowed:
            raise ValidationError(
                {codename: [f"You do not hold {offered[codename].label} on this {obj._meta.verbose_name}, "
                            "so you cannot grant it."]}
            )  # fmt: skip
        if allowed:
            changes[codename] = wanted
    with transaction.atomic():
        permissions.share(obj, role=role, user=user, team=team)
        for codename, wanted in changes.items():
            permissions.grant_extra(obj, codename, user=user, team=team, granted=wanted)
        audit_event(
            actor=actor,
            event=_event(obj, "share"),
            obj=obj,
            data=_target(user, team) | {"role": role, "grants": sorted(c for c, w in changes.items() if w)},
            request=request,
        )
        if role == "viewer" or not all(changes.values()):  # a downgrade or a grant taken back
            _recheck_sockets(obj, user=user, team=team)


def unshare_object(
    *, obj: models.Model, actor, user=None, team=None, grants: Sequence[Grant] = (), request=None
) -> None:
    """Remove every right `user` or `team` holds on `obj` (the role and any extra grant)."""
    permissions.require(actor, "change", obj)
    if (user is None) == (team is None):
        raise ValidationError("Choose whom to remove.")
    if user is not None and user.pk == getattr(obj, "owner_id", None):
        raise ValidationError({"user": ["The owner always keeps access."]})
    with transaction.atomic():
        permissions.unshare(obj, user=user, team=team)
        for grant in grants:
            permissions.grant_extra(obj, grant.codename, user=user, team=team, granted=False)
        audit_event(actor=actor, event=_event(obj, "unshare"), obj=obj, data=_target(user, team), request=request)
        _recheck_sockets(obj, user=user, team=team)


def _recheck_sockets(obj: models.Model, *, user=None, team=None) -> None:
    """After commit, open sockets on `obj` and every socket of the users who lost something ask
    again whether they may still view (API.md: sockets that lose access close with 4403); the
    users' groups also reach sockets on objects whose visibility follows `obj` (a run's experiment)."""
    members = [user.pk] if user is not None else list(team.group.user_set.values_list("pk", flat=True))
    access_changed([group_name(obj._meta.model_name, obj.pk), *(user_access_group(pk) for pk in members)])


def sharing_of(obj: models.Model, grants: Sequence[Grant] = ()) -> dict:
    """Who has access to `obj` besides its owner: users and teams with their role and extra
    grants, from one query over guardian's user and group permission rows."""
    user_model, group_model = get_user_obj_perms_model(obj), get_group_obj_perms_model(obj)
    if permissions._is_direct(user_model):
        users_qs, groups_qs = (
            user_model.objects.filter(content_object=obj),
            group_model.objects.filter(content_object=obj),
        )
    else:
        where = {"content_type": ContentType.objects.get_for_model(obj), "object_pk": str(obj.pk)}
        users_qs, groups_qs = user_model.objects.filter(**where), group_model.objects.filter(**where)

    def text(value: str):
        return Cast(Value(value), output_field=models.CharField())

    rows = (
        users_qs.exclude(user_id=getattr(obj, "owner_id", None))
        .annotate(kind=text("user"), name=F("user__username"), slug=F("user__username"))
        .values_list("kind", "name", "slug", "permission__codename")
        .order_by()
        .union(
            groups_qs.filter(group__team__isnull=False)
            .annotate(kind=text("team"), name=F("group__team__name"), slug=F("group__team__slug"))
            .values_list("kind", "name", "slug", "permission__codename")
            .order_by(),
            # the share form's team choices ride along, so the card costs one query
            Team.objects.annotate(kind=text("choice"), label=F("name"), key=Cast("pk", models.CharField()))
            .values_list("kind", "label", "key", text(""))
            .order_by(),
            all=True,
        )
    )
    held: dict[tuple[str, str, str], set[str]] = {}
    choices: list[tuple[str, str]] = []
    for who, name, slug, codename in rows:
        if who == "choice":
            choices.append((slug, name))
        else:
            held.setdefault((who, name, slug), set()).add(codename)
    actions = {permissions.codename(obj, a): a for a in permissions.OWNER_ACTIONS}
    out: dict[str, list] = {"users": [], "teams": [], "team_choices": sorted(choices, key=lambda c: c[1])}
    for (who, name, slug), codenames in sorted(held.items()):
        acts = {actions[c] for c in codenames if c in actions}
        role = "owner" if "delete" in acts else ("editor" if "change" in acts else "viewer" if acts else "none")
        out[f"{who}s"].append(
            {"name": name, "slug": slug, "role": role, "grants": [g for g in grants if g.codename in codenames]}
        )
    return out


def sharing_context(
    obj: models.Model, user, *, share_url: str, unshare_url: str, grants: Sequence[Grant] = (),
    form: SharingForm | None = None, can_change: bool | None = None,
) -> dict | None:  # fmt: skip
    """What `templates/core/_sharing.html` needs; None for people who may not change `obj`
    (they see no sharing card, as on the catalog model page)."""
    if can_change is None:
        can_change = permissions.can(user, "change", obj)
    if not can_change:
        return None
    listing = sharing_of(obj, grants)
    form = form if form is not None else SharingForm(grants=offered_grants(user, obj, grants))
    form.fields["team"].choices = [("", form.fields["team"].empty_label), *listing.pop("team_choices")]
    return {
        "owner": getattr(obj, "owner", None),
        **listing,
        "form": form,
        "share_url": share_url,
        "unshare_url": unshare_url,
        "grants": list(grants),
    }


def offered_grants(user, obj: models.Model, grants: Sequence[Grant]) -> list[Grant]:
    """The extra grants `user` may hand on for `obj` (the checkboxes the share form shows)."""
    return [g for g in grants if can_grant(user, obj, g)]


def share_from_form(request, form: SharingForm, *, obj: models.Model) -> bool:
    """Validate `form` and share; on success add a message and return True. On failure the
    service's errors are put on the form (shown inline) and nothing has changed."""
    if not form.is_valid():
        return False
    data = form.cleaned_data
    try:
        share_object(
            obj=obj, actor=request.user, role=data["role"], user=data["user"], team=data["team"],
            grants=form.grants, requested=form.requested_grants(), request=request,
        )  # fmt: skip
    except ValidationError as exc:
        apply_validation_error(form, exc)
        return False
    who = data["user"].username if data["user"] else data["team"].name
    extras = [g.label for g in form.grants if data.get(g.codename)]
    messages.success(request, f"Shared with {who} as {data['role']}{' + ' + ', '.join(extras) if extras else ''}.")
    return True


def unshare_from_post(request, *, obj: models.Model, grants: Sequence[Grant] = ()) -> None:
    """Remove the user (``user`` = username) or team (``team`` = slug) named in the POST."""
    user = get_user_model().objects.filter(username=request.POST.get("user") or "").first()
    team = Team.objects.filter(slug=request.POST.get("team") or "").first() if user is None else None
    if user is None and team is None:
        messages.error(request, "Choose whom to remove.")
        return
    try:
        unshare_object(obj=obj, actor=request.user, user=user, team=team, grants=grants, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(request, f"Removed access for {user.username if user else team.name}.")


def share_page_views(
    *, lookup: Callable, detail_view: Callable, detail_url: str, key: str, grants: Sequence[Grant] = ()
) -> tuple[Callable, Callable]:
    """The share and unshare POST views of one kind's page, so every kind's Sharing card works alike.

    `lookup` is the kind's `_for` selector, `detail_view(request, key, share_form=, status=)` renders
    the page (with the form's errors inline on a 400), `detail_url` names it and `key` is its URL
    argument (``"name"`` or ``"pk"``). Strangers get 404 and viewers 403 from `lookup`.

        model_share, model_unshare = sharing.share_page_views(
            lookup=selectors.model_for, detail_view=model_detail, detail_url="catalog:model-detail", key="name")
    """

    @require_POST
    def share(request, **kwargs):
        obj = lookup(request.user, kwargs[key], "change")
        form = SharingForm(request.POST, grants=grants)
        if share_from_form(request, form, obj=obj):
            return redirect(detail_url, **{key: kwargs[key]})
        return detail_view(request, kwargs[key], share_form=form, status=400)  # inline errors; nothing changed

    @require_POST
    def unshare(request, **kwargs):
        obj = lookup(request.user, kwargs[key], "change")
        unshare_from_post(request, obj=obj, grants=grants)
        return redirect(detail_url, **{key: kwargs[key]})

    return share, unshare
