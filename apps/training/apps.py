from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "apps.training"
    label = "training"
    verbose_name = "Training jobs and sweeps"
    nav_items = [("Training", "training:job-list", None)]
    role_permissions = {
        "ml-engineers": [
            "training.add_trainingjob",
            "training.add_sweep",
            "training.add_trainingscript",
        ]
    }
