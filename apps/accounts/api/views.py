from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.principals import groups_of
from apps.accounts.roles import ROLES


class MeView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "id": serializers.IntegerField(),
                "username": serializers.CharField(),
                "email": serializers.EmailField(),
                "roles": serializers.ListField(child=serializers.CharField()),
                "teams": serializers.ListField(child=serializers.CharField()),
                "token_scopes": serializers.ListField(child=serializers.CharField(), allow_null=True),
            },
        )
    )
    def get(self, request):
        user = request.user
        groups = groups_of(user)  # cached with the caller (apps/accounts/principals.py)
        return Response(
            {
                "id": user.pk,
                "username": user.username,
                "email": user.email,
                "roles": sorted(name for name, _ in groups if name in ROLES),
                "teams": sorted(team for _, team in groups if team),
                "token_scopes": getattr(request.auth, "scopes", None),
            }
        )
