from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "apps.experiments"
    label = "experiments"
    verbose_name = "Experiments and runs"
    nav_items = [("Experiments", "experiments:experiment-list", None)]
    role_permissions = {
        "ml-engineers": ["experiments.add_experiment", "experiments.add_run"],
    }

    # High-volume rows written in bulk: auditing them would mean one audit entry per metric point.
    # Runs and experiments (the things people change) stay audited; a user's column choice is not a change.
    unaudited_models = ("MetricPoint", "RunMetricSummary", "RunParam", "RunTag", "ExperimentKey", "RunsTableColumns")

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from apps.core import residency

        residency.register_source("run", _run_region)

        for name in self.unaudited_models:
            model = self.get_model(name)
            if auditlog.contains(model):
                auditlog.unregister(model)


def _run_region(run_id: str) -> str | None:
    """The residency region of run `run_id` (a catalog version's lineage names its run by id)."""
    from apps.experiments.models import Run

    if not run_id.isdigit():
        return None
    return Run.objects.filter(pk=int(run_id)).values_list("region", flat=True).first()
