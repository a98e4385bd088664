from apps.core.permissions import can
from apps.core.realtime import ObjectConsumer
from apps.features.models import FeatureView


class FeatureViewConsumer(ObjectConsumer):
    """Materialization progress of one feature view."""

    group_kind = "featureview"

    def load_object(self, user, pk):
        view = FeatureView.objects.filter(pk=pk).first() if str(pk).isdigit() else None
        return view if view is not None and can(user, "view", view) else None
