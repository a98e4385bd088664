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

        for name in self.unaudited_models:
            model = self.get_model(name)
            if auditlog.contains(model):
                auditlog.unregister(model)
