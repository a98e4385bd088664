"""`{object}/sharing` for every owned kind (shared/API.md): one view class, one share service.

An app wires it with its `_for` selector:

    path("models/<str:name>/sharing", SharingView.as_view(lookup=selectors.model_for), name="model-sharing")

GET lists who holds access besides the owner (owner and editors: the people who can change it);
POST `{"user"|"team", "role", "grants"}` shares, DELETE with the same target unshares (204). The
service (`apps.core.sharing`) checks the actor, audits and refuses grants the actor does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import sharing
from apps.core.api.validation import validated
from apps.core.permissions import require


class ShareSerializer(serializers.Serializer):
    user = serializers.CharField(required=False, max_length=150, help_text="username")
    team = serializers.CharField(required=False, max_length=50, help_text="team slug")
    role = serializers.ChoiceField(choices=["viewer", "editor"], default="viewer")
    grants = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, default=list, help_text='e.g. ["view_pii"]'
    )


class UnshareSerializer(serializers.Serializer):
    user = serializers.CharField(required=False, max_length=150, help_text="username")
    team = serializers.CharField(required=False, max_length=50, help_text="team slug")


class ShareEntrySerializer(serializers.Serializer):
    user = serializers.CharField(required=False)
    team = serializers.CharField(required=False)
    role = serializers.ChoiceField(choices=["viewer", "editor", "owner"])
    grants = serializers.ListField(child=serializers.CharField())


ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    403: OpenApiResponse(description="visible, but only the owner and editors share"),
    404: OpenApiResponse(description="not found or not visible"),
}


class SharingView(APIView):
    """Share one object. `lookup(user, **url_kwargs)` is the kind's `_for` selector; `grants` the
    extra object permissions this kind offers (a feature view's ``view_pii``)."""

    lookup: Callable = None
    grants: Sequence[sharing.Grant] = ()

    def _object(self, request, kwargs):
        obj = self.lookup(request.user, **kwargs)
        require(request.user, "change", obj)  # only the owner and editors see or change sharing
        return obj

    @extend_schema(responses={200: ShareEntrySerializer(many=True), **ERRORS})
    def get(self, request, **kwargs):
        return Response(sharing.sharing_list(self._object(request, kwargs), self.grants))

    @extend_schema(request=ShareSerializer, responses={204: None, **ERRORS})
    def post(self, request, **kwargs):
        obj = self._object(request, kwargs)
        data = validated(ShareSerializer, request.data)
        user, team = sharing.share_target_for(username=data.get("user"), team_slug=data.get("team"))
        sharing.share_object(
            obj=obj, actor=request.user, role=data["role"], user=user, team=team, grants=self.grants,
            requested={codename: True for codename in data["grants"]}, request=request,
        )  # fmt: skip
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=UnshareSerializer, responses={204: None, **ERRORS})
    def delete(self, request, **kwargs):
        obj = self._object(request, kwargs)
        data = validated(UnshareSerializer, request.data)
        user, team = sharing.share_target_for(username=data.get("user"), team_slug=data.get("team"))
        sharing.unshare_object(obj=obj, actor=request.user, user=user, team=team, grants=self.grants, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
