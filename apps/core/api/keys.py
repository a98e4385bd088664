"""REST API of the key ring (platform admins with a token holding the `admin` scope).

`GET keys/`: the ring summary (key ids and counts, never a key). `POST keys/rotate`: queue a
rotation of the embedded ring, after step-up (`X-OTP` or `otp`); 202 with the job, which
`GET keys/rotations/{id}/` shows until it ends. Views validate, call one service or selector and
serialize (apps/core/keyring_admin.py).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import stepup
from apps.core import keyring_admin
from apps.core.api.validation import validated
from apps.core.models import KeyRotation

ERRORS = {
    403: OpenApiResponse(description="the token lacks the `admin` scope, or step_up_required (send X-OTP)"),
    404: OpenApiResponse(description="not found, or the caller is not a platform admin"),
}
CONFLICT = {409: OpenApiResponse(description="a rotation is already running, or the ring comes from VAULT_KEYRING")}


class KeyRotationSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username")
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = KeyRotation
        fields = [
            "id", "state", "retire", "requested_by", "previous_kid", "active_kid", "done", "total", "percent",
            "report", "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class KeySerializer(serializers.Serializer):
    kid = serializers.CharField()
    active = serializers.BooleanField()
    blobs = serializers.IntegerField(help_text="stored files whose data key this key wraps")
    audit_entries = serializers.IntegerField(help_text="audit entries hashed under this key")
    needed = serializers.BooleanField(help_text="active, or something still needs it (never drop it)")


class MissingKeySerializer(serializers.Serializer):
    kid = serializers.CharField()
    blobs = serializers.IntegerField()
    audit_entries = serializers.IntegerField()


class KeyRingSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=["embedded", "configured"])
    source_detail = serializers.CharField()
    rotatable = serializers.BooleanField(help_text="false: the ring comes from VAULT_KEYRING (docs/SECURITY.md)")
    active_kid = serializers.CharField()
    keys = KeySerializer(many=True)
    missing = MissingKeySerializer(many=True, help_text="keys something needs that the ring lacks")
    rotation = KeyRotationSerializer(allow_null=True, help_text="the latest rotation")


class RotateSerializer(serializers.Serializer):
    retire = serializers.BooleanField(default=False, help_text="afterwards drop keys nothing needs any more")
    otp = serializers.CharField(required=False, allow_blank=True, max_length=12, help_text="or the X-OTP header")


class _AdminView(APIView):
    required_scope = "admin"


class KeyRingView(_AdminView):
    @extend_schema(responses={200: KeyRingSerializer, **ERRORS})
    def get(self, request):
        return Response(KeyRingSerializer(keyring_admin.keyring_summary(request.user)).data)


class KeyRotateView(_AdminView):
    @extend_schema(
        request=RotateSerializer, responses={202: KeyRotationSerializer, **ERRORS, **CONFLICT},
        description="Rotate the embedded key ring (a job on the default queue): needs a current one-time code "
        "(X-OTP). Poll keys/rotations/{id}/ for progress.",
    )  # fmt: skip
    def post(self, request):
        keyring_admin.require_admin(request.user)
        data = validated(RotateSerializer, request.data)
        keyring_admin.rotation_refusal()  # 409 before a code is spent
        stepup.require_step_up_api(request, data.get("otp"), action=keyring_admin.STEP_UP_ACTION)
        rotation = keyring_admin.key_rotation_request(actor=request.user, retire=data["retire"], request=request)
        return Response(KeyRotationSerializer(rotation).data, status=status.HTTP_202_ACCEPTED)


class KeyRotationDetailView(_AdminView):
    @extend_schema(responses={200: KeyRotationSerializer, **ERRORS})
    def get(self, request, pk):
        return Response(KeyRotationSerializer(keyring_admin.rotation_for(request.user, pk)).data)
