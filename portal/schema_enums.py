"""Names for choice sets that share a field name across apps (drf-spectacular ENUM_NAME_OVERRIDES).

Without them the schema would call them Source995Enum and the like.
"""

from apps.experiments.models import Run
from apps.features.models import FeatureView, MaterializationJob

RUN_STATUS = Run.Status
RUN_START_STATUS = [Run.Status.QUEUED.value, Run.Status.RUNNING.value]
RUN_SOURCE = Run.Source
FEATURE_VIEW_SOURCE = FeatureView.Source
MATERIALIZATION_STATE = MaterializationJob.State

from apps.training.models import Sweep, TrainingJob  # noqa: E402

TRAINING_JOB_STATE = TrainingJob.State
SWEEP_STATE = Sweep.State

from apps.approvals.models import PromotionRequest  # noqa: E402

PROMOTION_STATE = PromotionRequest.State
PROMOTION_RISK = PromotionRequest.Risk

from apps.serving.models import Route, ScoringJob  # noqa: E402

ROUTE_MODE = Route.Mode.values  # the API offers the values as their own labels
SWEEP_MODE = Sweep._meta.get_field("mode").choices
RESOURCE_CLASS = ScoringJob.ResourceClass

from apps.monitoring.models import Alert, DriftReport, ReferenceProfile, WebhookDelivery  # noqa: E402

ALERT_STATE = Alert.State
ALERT_SEVERITY = Alert.Severity
ALERT_KIND = Alert.Kind
DRIFT_REPORT_STATE = DriftReport.State
DRIFT_REPORT_STATUS = DriftReport.Status
PROFILE_STATE = ReferenceProfile.State
WEBHOOK_DELIVERY_STATE = WebhookDelivery.State
