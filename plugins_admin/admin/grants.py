"""Admin pages: the capabilities granted to plugins.

Each row is one ``CapabilityGrant``. Saving and deleting go through
``tachycore.governance.grants`` (never a bare model save), so that every process of the
site follows the change within a second, as it does after ``manage.py pm grant``. The
list says, above the rows, what each plugin asks for and holds no grant for. The model
permissions decide who may see (``view``), give (``add``), change and revoke (``delete``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from tachycore import governance
from tachycore.errors import InvalidGrant
from tachycore.manager import plugin_manager
from tachycore.models import Access, CapabilityGrant

from .lookups import FilterLookupsOnly


class GrantForm(forms.ModelForm):
    """A grant, checked the way ``pm grant`` checks it."""

    access = forms.TypedChoiceField(choices=[(a.value, a.label) for a in Access if a], coerce=int)

    class Meta:
        model = CapabilityGrant
        fields = ["plugin", "capability", "access", "expires_at"]

    def clean_plugin(self) -> str:
        plugin = self.cleaned_data["plugin"]
        if not plugin_manager.is_known(plugin):
            raise forms.ValidationError(f"No plugin named {plugin!r}.")
        return plugin

    def clean_capability(self) -> str:
        try:
            return governance.check_capability(self.cleaned_data["capability"])
        except InvalidGrant as e:
            raise forms.ValidationError(str(e)) from None


@admin.register(CapabilityGrant)
class GrantAdmin(FilterLookupsOnly):
    form = GrantForm
    list_display = ("plugin", "capability", "access_name", "granted_by", "created", "expires_at")
    list_filter = ("plugin", "access")
    search_fields = ("=plugin", "=capability")
    readonly_fields = ("granted_by", "created")

    @admin.display(description="access", ordering="access")
    def access_name(self, grant: CapabilityGrant) -> str:
        return Access(grant.access).name

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # a grant is a plugin and a capability: changing either is revoking and granting anew
        return (*self.readonly_fields, "plugin", "capability") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: CapabilityGrant, form: Any, change: bool) -> None:
        saved = governance.grants.grant(obj.plugin, obj.capability, obj.access, expires_at=obj.expires_at,
                                        granted_by=f"admin ({request.user.get_username()})")
        obj.pk = CapabilityGrant.objects.get(plugin=saved.plugin, capability=saved.capability).pk

    def delete_model(self, request: HttpRequest, obj: CapabilityGrant) -> None:
        governance.grants.revoke(obj.plugin, obj.capability)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for grant in list(queryset):
            governance.grants.revoke(grant.plugin, grant.capability)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        asked: list[tuple[str, str, str]] = []
        for name, code in sorted(plugin_manager.plugins.items()):
            if code.built_in or not code.capabilities:
                continue
            try:
                missing = governance.ungranted(name, code.capabilities)
            except InvalidGrant as e:
                messages.warning(request, f"{name}: its capabilities cannot be read: {e}")
                continue
            asked.extend((name, capability, access.name) for capability, access in missing.items())
        return super().changelist_view(request, {**(extra_context or {}), "asked": asked})
