"""Experiments: creating and editing them, and the per-user choice of columns in an experiment's runs
table. Every service checks the acting user through `apps.core.permissions`; creating needs the
role's add permission and the owner is granted the experiment (shared with the chosen team).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.core.permissions import grant_owner, require
from apps.core.residency import clean_region
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.experiments.models import Experiment, RunsTableColumns
from apps.experiments.validation import check_key, clean_tags

MAX_TABLE_COLUMNS = 30


# --- experiments --------------------------------------------------------------------------------
def experiment_create(
    *, actor, name: str, description: str = "", tags=None, team: str | None = None, region: str | None = "default"
) -> Experiment:
    """Create an experiment owned by `actor` (who needs the role's add permission).

    `team` is a team slug the actor belongs to: the team becomes a viewer of the experiment (as
    for every kind, docs/SECURITY.md); the owner shares it as editor to let the team log runs.
    `region` (one of the configured regions, "default" = unpinned) pins its runs and artifacts."""
    require(actor, "add", Experiment)
    team_obj = team_for_create(actor=actor, slug=team)
    tags = clean_tags(tags)
    region = clean_region(region)
    experiment = Experiment(
        name=name, description=description or "", tags=tags, owner=actor, team=team_obj, region=region
    )
    experiment.full_clean(exclude=["owner", "team"])
    with transaction.atomic():
        try:
            experiment.save()
        except IntegrityError:
            raise ValidationError(
                {"name": [f"An experiment named {name!r} already exists; pick another name."]}
            ) from None
        grant_owner(experiment)
        share_with_team_on_create(experiment, team_obj)
    return experiment


def experiment_update(*, experiment: Experiment, actor, description=None, tags=None) -> Experiment:
    """Change the description and/or tags (change rights on the experiment)."""
    require(actor, "change", experiment)
    fields = []
    if description is not None:
        experiment.description = description
        fields.append("description")
    if tags is not None:
        experiment.tags = clean_tags(tags)
        fields.append("tags")
    if fields:
        experiment.save(update_fields=[*fields, "updated_at"])
    return experiment


# --- the runs table's columns ------------------------------------------------------------------
def runs_table_columns_save(*, actor, experiment: Experiment, metrics, params) -> RunsTableColumns:
    """Remember the metric and param columns `actor` chose for `experiment`'s runs table (anyone
    who may view the experiment; a choice is personal and changes nothing others see)."""
    require(actor, "view", experiment)
    chosen = {}
    for field, keys in (("metrics", metrics), ("params", params)):
        keys = list(dict.fromkeys(keys or []))
        if len(keys) > MAX_TABLE_COLUMNS:
            raise ValidationError({field: [f"Choose at most {MAX_TABLE_COLUMNS} columns."]})
        problems = [p for p in map(check_key, keys) if p]
        if problems:
            raise ValidationError({field: problems[:5]})
        chosen[field] = keys
    columns, _ = RunsTableColumns.objects.update_or_create(user=actor, experiment=experiment, defaults=chosen)
    return columns
