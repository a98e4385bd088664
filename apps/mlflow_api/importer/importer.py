"""Imports what an `MlflowReader` reads into the portal, through the portal's services with the
owner as the actor (so it is permission-checked and audited like any other write).

Idempotent, and resumable after a failure, without a table of its own: what was imported carries
the MLflow ids as tags, and each item is looked up before it is written.
- an experiment: tags `mlflow.experiment_id` and `mlflow.experiment_name`;
- a run: tag `mlflow.source_run_id` (its params, tags, metric series and artifacts are added when
  missing: a series the run already has a summary for, an artifact path it already holds, is skipped);
- a model version: the catalog tags `mlflow-import` and `mlflow-version-<n>` (see `registry.py`).

Per item problems (a bad key, a corrupt metric file, an artifact over the size limit) are counted
as failed in the summary with their reason; the import goes on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core.names import slug_from
from apps.core.permissions import can, restrict
from apps.experiments import services
from apps.experiments.models import Experiment, Run, RunArtifact, RunMetricSummary, RunTag
from apps.experiments.validation import MAX_METRICS, MAX_PARAMS, MAX_TAGS, clean_params, clean_tags
from apps.mlflow_api.importer.registry import RegistryImporter
from apps.mlflow_api.importer.source import ItemError, MlflowReader, SourceExperiment, SourceRun
from apps.mlflow_api.importer.summary import ITEM_ERRORS, ImportSummary, NoProgress, Progress, reason

SOURCE_RUN_TAG = "mlflow.source_run_id"
EXPERIMENT_ID_TAG = "mlflow.experiment_id"
EXPERIMENT_NAME_TAG = "mlflow.experiment_name"
STATUSES = {"FINISHED": Run.Status.FINISHED, "FAILED": Run.Status.FAILED, "KILLED": Run.Status.KILLED}


def ms_to_datetime(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def fit_mapping(values: dict[str, str], clean, kind: str, where: str, summary: ImportSummary) -> dict[str, str]:
    """The entries the portal accepts, one by one (`clean` is the service's own validator); each
    refused entry is a counted failure naming the key and the reason."""
    kept = {}
    for key, value in values.items():
        try:
            kept.update(clean({key: value}))
        except ValidationError as exc:
            summary.fail(kind, f"{where}: {reason(exc)}")
    return kept


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Importer:
    """One import: `run()` reads everything from `reader` and writes what is missing as `owner`."""

    def __init__(self, reader: MlflowReader, *, owner, dry_run: bool = False, progress: Progress | None = None):
        self.reader, self.owner, self.dry_run = reader, owner, dry_run
        self.progress = progress or NoProgress()
        self.summary = ImportSummary(dry_run=dry_run)
        self.portal_runs: dict[str, Run] = {}  # MLflow run id -> the portal run (lineage of versions)

    def run(self) -> ImportSummary:
        plan = self._plan_runs()
        registry = RegistryImporter(
            self.reader, owner=self.owner, dry_run=self.dry_run, summary=self.summary, progress=self.progress,
            portal_run=self.portal_run,
        )  # fmt: skip
        versions = registry.plan()
        self.progress.start(sum(len(runs) for _, runs in plan) + sum(len(v) for _, v in versions))
        for source, runs in plan:
            experiment = self._experiment(source)
            for item in runs:
                self.progress.advance(f"run {item.name}"[:40])
                if experiment is None and not self.dry_run:
                    self.summary.fail("runs", f"run {item.run_id}: its experiment {source.name!r} was not imported")
                    continue
                self._import_run(item, experiment)
        registry.run(versions)
        return self.summary

    def portal_run(self, mlflow_run_id: str) -> Run | None:
        """The portal run imported from this MLflow run (in this import or an earlier one)."""
        if mlflow_run_id not in self.portal_runs:
            found = RunTag.objects.filter(key=SOURCE_RUN_TAG, value=mlflow_run_id).select_related("run").first()
            self.portal_runs[mlflow_run_id] = found.run if found is not None else None
        return self.portal_runs[mlflow_run_id]

    # --- experiments -----------------------------------------------------------------------------
    def _plan_runs(self) -> list[tuple[SourceExperiment, list[SourceRun]]]:
        plan = []
        for experiment in self.reader.experiments():
            if isinstance(experiment, ItemError):
                self.summary.fail("experiments", str(experiment))
                continue
            if experiment.lifecycle_stage == "deleted":
                self.summary.add("experiments", "skipped")
                continue
            runs = []
            for run in self.reader.runs(experiment):
                if isinstance(run, ItemError):
                    self.summary.fail("runs", str(run))
                elif run.lifecycle_stage == "deleted":
                    self.summary.add("runs", "skipped")
                else:
                    runs.append(run)
            if not runs and experiment.experiment_id == "0" and experiment.name == "Default":
                continue  # the experiment every MLflow store starts with: empty, it is noise
            plan.append((experiment, runs))
        return plan

    def _experiment(self, source: SourceExperiment) -> Experiment | None:
        """The portal experiment this MLflow experiment was imported into, else a new one (a free
        slug of its name); None when it cannot be made (counted) or in a dry run."""
        for experiment in restrict(self.owner, "change", Experiment.objects.filter(tags__has_key=EXPERIMENT_ID_TAG)):
            tags = experiment.tags
            if tags.get(EXPERIMENT_ID_TAG) == source.experiment_id and tags.get(EXPERIMENT_NAME_TAG) == source.name:
                self.summary.add("experiments", "skipped")
                return experiment
        self.summary.add("experiments", "created")
        if self.dry_run:
            return None
        where = f"experiment {source.name!r}"
        tags = fit_mapping(
            {k: v for k, v in source.tags.items() if k != "mlflow.note.content"},
            clean_tags,
            "tags",
            where,
            self.summary,
        )
        tags.update({EXPERIMENT_ID_TAG: source.experiment_id, EXPERIMENT_NAME_TAG: source.name[:5000]})
        try:
            return services.experiment_create(
                actor=self.owner,
                name=self._free_experiment_name(source),
                description=source.tags.get("mlflow.note.content", ""),
                tags=dict(list(tags.items())[-MAX_TAGS:]),
            )
        except ITEM_ERRORS as exc:
            self.summary.add("experiments", "created", -1)
            self.summary.fail("experiments", f"{where}: {reason(exc)}")
            return None

    @staticmethod
    def _free_experiment_name(source: SourceExperiment) -> str:
        base = slug_from(source.name, fallback=f"mlflow-{source.experiment_id}", max_length=90)
        name, n = base, 1
        while Experiment.objects.filter(name=name).exists():  # names are unique across the portal
            n += 1
            name = f"{base}-mlflow" if n == 2 else f"{base}-mlflow-{n - 1}"
        return name

    # --- runs ------------------------------------------------------------------------------------
    def _import_run(self, source: SourceRun, experiment: Experiment | None) -> None:
        where = f"run {source.name!r} ({source.run_id})"
        found = RunTag.objects.filter(key=SOURCE_RUN_TAG, value=source.run_id).select_related("run__experiment").first()
        run = found.run if found is not None else None
        if run is not None and not can(self.owner, "change", run.experiment):
            self.summary.fail("runs", f"{where}: imported before into an experiment {self.owner} may not change")
            return
        params = fit_mapping(source.params, clean_params, "params", where, self.summary)
        tags = fit_mapping(source.tags, clean_tags, "tags", where, self.summary)
        tags[SOURCE_RUN_TAG] = source.run_id
        try:
            fresh = run is None
            if fresh:
                self.summary.add("runs", "created")
                if not self.dry_run:
                    run = self._create_run(source, experiment, params, tags)
            else:
                self.summary.add("runs", "skipped")
            self._add_params_tags(run, params, tags, where, fresh=fresh)
            self._add_metrics(run, source, where)
            self._add_artifacts(run, source, where)
            if run is not None:
                self._finish(run, source)
                self.portal_runs[source.run_id] = run
        except ITEM_ERRORS as exc:
            self.summary.fail("runs", f"{where}: {reason(exc)}")

    def _create_run(self, source: SourceRun, experiment: Experiment, params: dict, tags: dict) -> Run:
        # The source-run tag goes in with the run itself: a run is never left without its MLflow id.
        first_tags = dict([(SOURCE_RUN_TAG, tags[SOURCE_RUN_TAG]), *list(tags.items())[: MAX_TAGS - 1]])
        try:
            run = services.run_create(
                experiment=experiment,
                actor=self.owner,
                name=source.name[:200],
                source=Run.Source.SCRIPT,
                params=dict(list(params.items())[:MAX_PARAMS]),
                tags=first_tags,
                code_version=source.tags.get("mlflow.source.git.commit", "")[:200],
                notes=source.tags.get("mlflow.note.content", ""),
                status=Run.Status.QUEUED if source.status == "SCHEDULED" else Run.Status.RUNNING,
                started_at=ms_to_datetime(source.start_time),
            )
        except ITEM_ERRORS:
            self.summary.add("runs", "created", -1)
            raise
        return run

    def _add_params_tags(self, run: Run | None, params: dict, tags: dict, where: str, *, fresh: bool) -> None:
        """Log the params and tags the run lacks, 100 a call; those already there count as skipped
        (or as created when `fresh`: the run was just made with them)."""
        have_params = run.params if run is not None else {}
        have_tags = run.tags if run is not None else {}
        new_params = {k: v for k, v in params.items() if k not in have_params}
        new_tags = {k: v for k, v in tags.items() if have_tags.get(k) != v}
        already = "created" if fresh else "skipped"
        self.summary.add("params", already, len(params) - len(new_params))
        self.summary.add("tags", already, len(tags) - len(new_tags))
        if self.dry_run:
            self.summary.add("params", "created", len(new_params))
            self.summary.add("tags", "created", len(new_tags))
            return
        for kind, values, size in (("params", new_params, MAX_PARAMS), ("tags", new_tags, MAX_TAGS)):
            for part in chunks(list(values.items()), size):
                try:
                    services.run_log_batch(run=run, actor=self.owner, **{kind: dict(part)})
                    self.summary.add(kind, "created", len(part))
                except ITEM_ERRORS as exc:
                    self.summary.fail(kind, f"{where}: {reason(exc)}")

    def _add_metrics(self, run: Run | None, source: SourceRun, where: str) -> None:
        have = set(RunMetricSummary.objects.filter(run=run).values_list("key", flat=True)) if run is not None else set()
        for key in source.metric_keys:
            if key in have:
                self.summary.add("metrics", "skipped")
                continue
            try:
                points = self.reader.metric_history(source, key)
                if not self.dry_run:
                    with transaction.atomic():  # a series is all or nothing, so a rerun can add it whole
                        for part in chunks(points, MAX_METRICS):
                            services.run_log_batch(run=run, actor=self.owner, metrics=part)
            except ITEM_ERRORS as exc:
                self.summary.fail("metrics", f"{where}, metric {key!r}: {reason(exc)}")
                continue
            self.summary.add("metrics", "created")
            self.summary.add("metric points", "created", len(points))

    def _add_artifacts(self, run: Run | None, source: SourceRun, where: str) -> None:
        try:
            listed = self.reader.artifacts(source)
        except ITEM_ERRORS as exc:
            self.summary.fail("artifacts", f"{where}: {reason(exc)}")
            return
        have = set(RunArtifact.objects.filter(run=run).values_list("path", flat=True)) if run is not None else set()
        for artifact in listed:
            if artifact.path in have:
                self.summary.add("artifacts", "skipped")
                continue
            try:
                if not self.dry_run:
                    with self.reader.open_artifact(source, artifact.path) as handle:
                        services.run_artifact_upload(
                            run=run, actor=self.owner, src=handle, size=artifact.size, path=artifact.path
                        )
            except ITEM_ERRORS as exc:
                self.summary.fail("artifacts", f"{where}, {artifact.path!r}: {reason(exc)}")
                continue
            self.summary.add("artifacts", "created")

    def _finish(self, run: Run, source: SourceRun) -> None:
        """Move the portal run to the MLflow run's final status (running and queued runs stay)."""
        target = STATUSES.get(source.status)
        if target is None or run.status == target or run.is_terminal:
            return
        if run.status == Run.Status.QUEUED and target == Run.Status.FINISHED:
            services.run_set_status(run=run, actor=self.owner, status=Run.Status.RUNNING)
        services.run_set_status(run=run, actor=self.owner, status=target, ended_at=ms_to_datetime(source.end_time))
