from django import forms

from apps.accounts.models import Team
from apps.core.forms import BootstrapFormMixin
from apps.core.permissions import teams_of
from apps.core.residency import configured_regions
from apps.experiments.models import slug_validator


class ExperimentForm(BootstrapFormMixin, forms.Form):
    name = forms.SlugField(max_length=100, validators=[slug_validator], help_text="Lowercase, e.g. churn-model.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        required=False,
        help_text="Members of the team can view the experiment; share it with them as editors to let them log runs.",
    )
    region = forms.ChoiceField(
        choices=(),
        required=False,
        initial="default",
        help_text="Residency: its runs and their artifacts are stored and downloaded only in this region "
        "(default = unpinned). It cannot change later.",
    )

    def __init__(self, *args, user=None, **kwargs):
        self._teams = teams_of(user)
        super().__init__(*args, **kwargs)

    def order_fields(self, field_order):
        # BootstrapFormMixin validates inside __init__ (it reads self.errors), so the user's teams
        # must be in place before that: BaseForm.__init__ calls order_fields right after copying fields.
        self.fields["team"].queryset = self._teams
        self.fields["region"].choices = [(r, r) for r in configured_regions()]
        super().order_fields(field_order)


class RunsTableForm(forms.Form):
    """The runs table's query string (filter, sort, columns, page); validated, never trusted."""

    filter = forms.CharField(required=False, max_length=2000)
    sort = forms.CharField(required=False, max_length=300)
    status = forms.CharField(required=False, max_length=10)
    metric = forms.MultipleChoiceField(required=False)
    param = forms.MultipleChoiceField(required=False)
    page_size = forms.TypedChoiceField(choices=[(n, n) for n in (25, 50, 100, 200)], coerce=int, required=False)

    def __init__(self, *args, metric_keys=(), param_keys=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = [(k, k) for k in metric_keys]
        self.fields["param"].choices = [(k, k) for k in param_keys]


class RunsTableColumnsForm(forms.Form):
    """The Columns picker of the runs table, saved per user and experiment (``reset`` forgets it)."""

    metric = forms.MultipleChoiceField(required=False)
    param = forms.MultipleChoiceField(required=False)
    reset = forms.BooleanField(required=False)

    def __init__(self, *args, metric_keys=(), param_keys=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = [(k, k) for k in metric_keys]
        self.fields["param"].choices = [(k, k) for k in param_keys]
