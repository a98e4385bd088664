"""The registry half of the import: MLflow registered models, their ONNX versions and aliases,
through the catalog's services (`model_create`, `version_register`, `alias_move`) as the owner.

A model imported from MLflow carries the catalog tag `mlflow-import`; each version the tags
`mlflow-import` and `mlflow-version-<n>` (n: the MLflow version), which is how a rerun knows what
is already there. The MLflow name becomes a catalog name (`slug_from`); when a catalog model that
was not imported already holds it, the import uses `<name>-mlflow` instead. Versions whose files
are not ONNX are counted as failed: the catalog holds ONNX models only.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.catalog import services as catalog
from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.core.names import slug_from
from apps.core.permissions import can
from apps.experiments.models import Run
from apps.mlflow_api.importer.source import ItemError, MlflowReader, SourceModel, SourceVersion
from apps.mlflow_api.importer.summary import ITEM_ERRORS, ImportSummary, Progress, reason

IMPORT_TAG = "mlflow-import"


def version_tag(version: str) -> str:
    return f"mlflow-version-{version}"


class RegistryImporter:
    def __init__(
        self,
        reader: MlflowReader,
        *,
        owner,
        dry_run: bool,
        summary: ImportSummary,
        progress: Progress,
        portal_run: Callable[[str], Run | None],
    ):
        self.reader, self.owner, self.dry_run = reader, owner, dry_run
        self.summary, self.progress, self.portal_run = summary, progress, portal_run

    def plan(self) -> list[tuple[SourceModel, list[SourceVersion]]]:
        plan = []
        for model in self.reader.models():
            if isinstance(model, ItemError):
                self.summary.fail("models", str(model))
                continue
            versions = []
            for version in self.reader.versions(model):
                if isinstance(version, ItemError):
                    self.summary.fail("versions", str(version))
                else:
                    versions.append(version)
            plan.append((model, versions))
        return plan

    def run(self, plan: list[tuple[SourceModel, list[SourceVersion]]]) -> None:
        for source, versions in plan:
            model = self._model(source)
            imported: dict[str, ModelVersion] = {}
            for version in versions:
                self.progress.advance(f"model {source.name} v{version.version}"[:40])
                if model is None and not self.dry_run:
                    self.summary.fail("versions", f"{source.name} v{version.version}: its model was not imported")
                    continue
                found = self._version(model, version)
                if found is not None:
                    imported[version.version] = found
            if model is not None:
                self._aliases(model, source, imported)
            elif self.dry_run:
                self.summary.add("aliases", "created", len(source.aliases))

    # --- models ----------------------------------------------------------------------------------
    def _model(self, source: SourceModel) -> RegisteredModel | None:
        base = slug_from(source.name, fallback="mlflow-model", max_length=90)
        for name in (base, f"{base}-mlflow", *(f"{base}-mlflow-{n}" for n in range(2, 10))):
            existing = RegisteredModel.objects.filter(name=name).first()
            if existing is not None and IMPORT_TAG not in existing.tags:
                continue  # a catalog model of its own: never mix imported versions into it
            if existing is not None:
                if not can(self.owner, "change", existing):
                    self.summary.fail(
                        "models", f"{source.name}: imported before as {name!r}, which {self.owner} may not change"
                    )
                    return None
                self.summary.add("models", "skipped")
                return existing
            self.summary.add("models", "created")
            if self.dry_run:
                return None
            try:
                return catalog.model_create(
                    actor=self.owner, name=name, description=source.description, tags=[IMPORT_TAG]
                )
            except ITEM_ERRORS as exc:
                self.summary.add("models", "created", -1)
                self.summary.fail("models", f"{source.name}: {reason(exc)}")
                return None
        self.summary.fail("models", f"{source.name}: every catalog name tried for it is taken")
        return None

    # --- versions --------------------------------------------------------------------------------
    def _version(self, model: RegisteredModel | None, source: SourceVersion) -> ModelVersion | None:
        where = f"{source.name} v{source.version}"
        if model is not None:
            found = next((v for v in model.versions.all() if version_tag(source.version) in v.tags), None)
            if found is not None:
                self.summary.add("versions", "skipped")
                return found
        if source.status.upper() != "READY":
            self.summary.fail("versions", f"{where}: its status in MLflow is {source.status}, not READY")
            return None
        lineage = self._lineage(source)
        try:
            with self.reader.version_onnx(source) as path:
                if self.dry_run:
                    self.summary.add("versions", "created")
                    return None
                with path.open("rb") as handle:
                    version = catalog.version_register(
                        model=model,
                        actor=self.owner,
                        artifact=handle,
                        artifact_size=path.stat().st_size,
                        description=source.description,
                        tags=[IMPORT_TAG, version_tag(source.version)],
                        lineage=lineage,
                        source=source.source[:1000],
                    )
        except ITEM_ERRORS as exc:
            self.summary.fail("versions", f"{where}: {reason(exc)}")
            return None
        self.summary.add("versions", "created")
        return version

    def _lineage(self, source: SourceVersion) -> dict:
        """The portal run the version was built from, when that run was imported."""
        run_id = source.run_id
        if not run_id and source.source.startswith("runs:/"):
            run_id = source.source[len("runs:/") :].split("/", 1)[0]
        run = self.portal_run(run_id) if run_id else None
        return {"run_id": str(run.pk)} if run is not None else {}

    # --- aliases ---------------------------------------------------------------------------------
    def _aliases(self, model: RegisteredModel, source: SourceModel, imported: dict[str, ModelVersion]) -> None:
        for alias, number in sorted(source.aliases.items()):
            where = f"{source.name}@{alias}"
            version = imported.get(number)
            if version is None:
                self.summary.fail("aliases", f"{where}: version {number} was not imported")
                continue
            current = Alias.objects.filter(model=model, name=alias).first()
            if current is not None and current.version_id == version.pk:
                self.summary.add("aliases", "skipped")
                continue
            try:
                catalog.alias_move(model=model, alias=alias, version=version, actor=self.owner)
            except ITEM_ERRORS as exc:
                self.summary.fail("aliases", f"{where}: {reason(exc)}")
                continue
            self.summary.add("aliases", "created")
