"""Admin console: gate policies for platform admins, written through the services (validated and
audited); promotion requests and decisions are read-only here (they change only by their flow)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from apps.approvals import services
from apps.approvals.models import Decision, GatePolicy, PromotionRequest
from apps.approvals.policies import POLICY_FIELDS, clean_policy_fields
from apps.core.admin import ReadOnlyAdminMixin
from apps.core.permissions import is_platform_admin


class PlatformAdminOnly:
    """Every admin permission answered by the decision point: platform admins, nobody else."""

    def has_module_permission(self, request):
        return is_platform_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return is_platform_admin(request.user)


class GatePolicyForm(forms.ModelForm):
    class Meta:
        model = GatePolicy
        fields = ["model", "alias", *POLICY_FIELDS]

    def clean(self):
        cleaned = super().clean()
        given = {name: cleaned[name] for name in POLICY_FIELDS if name in cleaned}
        try:
            cleaned.update(clean_policy_fields(given, partial=True))
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return cleaned


@admin.register(GatePolicy)
class GatePolicyAdmin(PlatformAdminOnly, admin.ModelAdmin):
    form = GatePolicyForm
    list_display = ("alias", "model", "approvals_required", "expiry_hours", "updated_by", "updated_at")
    list_filter = ("alias",)
    list_select_related = ("model", "updated_by")
    readonly_fields = ("updated_by", "updated_at")
    fields = ("model", "alias", *POLICY_FIELDS, "updated_by", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "model", "alias") if obj is not None else self.readonly_fields

    def has_add_permission(self, request):
        return is_platform_admin(request.user)

    def has_change_permission(self, request, obj=None):
        return is_platform_admin(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_platform_admin(request.user) and (obj is None or obj.model_id is not None)

    def get_actions(self, request):
        return {}  # no bulk delete around the audit of each removal

    def save_model(self, request, obj, form, change):
        """Through the services, so that the admin writes are validated and audited like the API's."""
        fields = {name: form.cleaned_data[name] for name in POLICY_FIELDS if name in form.cleaned_data}
        if change:
            saved = services.policy_update(actor=request.user, policy=GatePolicy.objects.get(pk=obj.pk), **fields)
        else:
            saved = services.policy_create(actor=request.user, alias=obj.alias, model=obj.model, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.policy_delete(actor=request.user, policy=obj)


class ReadOnly(ReadOnlyAdminMixin, PlatformAdminOnly):
    pass


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("pk", "model", "version", "target_alias", "state", "requested_by", "created_at")
    list_filter = ("state", "target_alias", "change_type")
    list_select_related = ("model", "version", "requested_by")


@admin.register(Decision)
class DecisionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("request", "approver", "decision", "decided_at")
    list_select_related = ("request", "approver")
