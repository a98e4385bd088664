"""Admin console: browse and share models; versions are immutable; aliases move through services."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from apps.catalog import services
from apps.catalog.models import MUTABLE_VERSION_FIELDS, Alias, ModelCard, ModelVersion, RegisteredModel


@admin.register(RegisteredModel)
class RegisteredModelAdmin(GuardedModelAdmin):
    list_display = ("name", "owner", "team", "latest_version", "framework", "archived_at", "updated_at")
    list_filter = ("framework", "archived_at")
    search_fields = ("name", "description")
    readonly_fields = ("latest_version", "latest_version_at", "framework", "archived_at", "created_at", "updated_at")
    list_select_related = ("owner", "team")
    actions = ["archive"]

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "name") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):  # models are archived, never deleted
        return False

    @admin.action(description="Archive the selected models (they take no new versions)")
    def archive(self, request, queryset):
        for model in queryset:
            services.model_archive(model=model, actor=request.user)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("model", "version", "framework", "created_by", "created_at")
    list_select_related = ("model", "created_by")
    search_fields = ("model__name",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ModelVersion._meta.fields if f.name not in MUTABLE_VERSION_FIELDS]

    def has_add_permission(self, request):  # versions are registered with their artifact, not typed in
        return False

    def has_delete_permission(self, request, obj=None):  # immutable: lineage and audit depend on them
        return False


class AliasForm(forms.ModelForm):
    class Meta:
        model = Alias
        fields = ["model", "name", "version", "protected"]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and self.instance.protected and "version" in self.changed_data:
            raise forms.ValidationError(
                "This alias is protected: it moves only through an approved promotion request "
                "(POST /api/v1/promotions/ or Request promotion on the version page)."
            )
        version, model = cleaned.get("version"), cleaned.get("model") or getattr(self.instance, "model", None)
        if version is not None and model is not None and version.model_id != model.pk:
            raise forms.ValidationError("That version belongs to another model.")
        return cleaned


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    form = AliasForm
    list_display = ("model", "name", "version", "protected", "moved_by", "moved_at")
    list_filter = ("protected", "name")
    list_select_related = ("model", "version", "moved_by")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("moved_by", "moved_at", "promotion_ref")
        fixed = ["model", "name", "moved_by", "moved_at", "promotion_ref"]
        return [*fixed, "version"] if obj.protected else fixed

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.protected

    def get_actions(self, request):
        return {}  # no bulk delete around the protection

    def save_model(self, request, obj, form, change):
        """Every change goes through the services, which refuse protected moves (409)."""
        stored = Alias.objects.filter(pk=obj.pk).first() if change else None
        protected = obj.protected
        if stored is None or stored.version_id != obj.version_id:
            obj.protected = stored.protected if stored is not None else protected
            moved = services.alias_move(
                model=obj.model,
                alias=obj.name,
                version=obj.version,
                actor=request.user,
                protected=None if stored is not None else protected,
            )
            obj.pk = moved.pk
        if stored is not None and stored.protected != protected:
            services.alias_set_protection(model=obj.model, alias=obj.name, protected=protected, actor=request.user)
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.alias_delete(model=obj.model, alias=obj.name, actor=request.user)


@admin.register(ModelCard)
class ModelCardAdmin(admin.ModelAdmin):
    list_display = ("model", "completeness", "updated_at")
    list_select_related = ("model",)
    readonly_fields = ("updated_at", "updated_by")
