from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.roles import user_roles
from apps.core.permissions import teams_of


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
        return Response(
            {
                "id": user.pk,
                "username": user.username,
                "email": user.email,
                "roles": user_roles(user),
                "teams": sorted(team.slug for team in teams_of(user)),
                "token_scopes": getattr(request.auth, "scopes", None),
            }
        )
