"""Two-factor secrets sealed in the vault: TOTP seeds and the keys that hash recovery codes.

django-otp stores a TOTP seed in clear (`TOTPDevice.key`, hex) and recovery codes in clear
(`StaticToken.token`): anyone who can read the database could mint second factors. Here:

* A TOTP device's seed is a `VaultBlob` (purpose ``totp-seed``), linked to the device by an
  `OtpSeal` row; the device's `key` column holds `KEY_MARKER`, which is not hex, so django-otp's
  own `TOTPDevice` (which reads `key`) cannot verify any code for it and fails closed. Only the
  proxy `SealedTOTPDevice` verifies, with the seed read from the vault.
* A recovery-code set (`StaticDevice`) has its own random 256-bit key, sealed the same way
  (purpose ``recovery-code-key``). Each `StaticToken.token` holds HMAC-SHA256(key, code),
  base64url, cut to the column's 16 characters (96 bits: a keyed MAC, so the database alone
  gives nothing to guess offline). `SealedStaticDevice.verify_token` hashes the code given and
  lets django-otp find and delete the matching token: a code works once.

The secrets are sealed by the vault's key ring like every artifact: `vault.keys_rotate` re-wraps
their data keys with all other blobs, and `vault.keys_retire_unused` keeps a master key while a
blob needs it. Deleting a device deletes its seal and its blob (`models.otp_seal_removed`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.core import vault
from apps.core.crypto import IntegrityError
from apps.core.models import VaultBlob

TOTP_PURPOSE = "totp-seed"
RECOVERY_PURPOSE = "recovery-code-key"
KEY_MARKER = "sealed-in-vault"  # TOTPDevice.key of a sealed device: not hex, so not a usable key
SEED_BYTES = 20  # 160 bits, django-otp's default TOTP key size
RECOVERY_KEY_BYTES = 32
HASH_CHARS = StaticToken._meta.get_field("token").max_length  # 16
MAX_SECRET_BYTES = 256


# --- models -------------------------------------------------------------------------------------


class OtpSeal(models.Model):
    """The vault blob holding one two-factor device's secret: a TOTP seed, or the key that hashes
    a recovery-code set. Deleting the device deletes this row, and this row's blob (a signal)."""

    totp = models.OneToOneField(
        "otp_totp.TOTPDevice", null=True, blank=True, on_delete=models.CASCADE, related_name="seal"
    )
    static = models.OneToOneField(
        "otp_static.StaticDevice", null=True, blank=True, on_delete=models.CASCADE, related_name="seal"
    )
    blob = models.OneToOneField("core.VaultBlob", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "sealed two-factor secret"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(totp__isnull=False, static__isnull=True)
                | models.Q(totp__isnull=True, static__isnull=False),
                name="otpseal_one_device",
            )
        ]

    def __str__(self) -> str:
        return f"sealed secret of {'TOTP' if self.totp_id else 'recovery'} device {self.totp_id or self.static_id}"


class SealedTOTPDevice(TOTPDevice):
    """A TOTP device whose seed comes from the vault (`bin_key`); its `key` column holds no secret.
    `config_url` (the QR code) and `verify_token` read `bin_key`, so both use the sealed seed."""

    class Meta:
        proxy = True
        verbose_name = "TOTP device (sealed)"

    @property
    def bin_key(self) -> bytes:
        return device_secret(self)


class SealedStaticDevice(StaticDevice):
    """A recovery-code set whose tokens are stored as keyed hashes: a code given is hashed (with the
    set's own key, sealed in the vault) before django-otp looks it up and deletes it (single use)."""

    class Meta:
        proxy = True
        verbose_name = "recovery codes (sealed)"

    def verify_token(self, token) -> bool:
        digest = recovery_code_hash(self, token)
        return bool(digest) and super().verify_token(digest)


# --- secrets -----------------------------------------------------------------------------------


def secret_seal(secret: bytes, *, purpose: str):
    """A new VaultBlob holding `secret`. Call inside the caller's transaction; the ciphertext is
    removed again if the row cannot be written."""
    return vault.blob_store(io.BytesIO(secret), purpose=purpose)


def device_secret(device) -> bytes:
    """The secret sealed for `device` (a TOTP or recovery-code device), read once per instance.
    A device without a seal (a clear one added behind the portal's back) has none: IntegrityError,
    so nothing verifies against it."""
    cached = device.__dict__.get("_sealed_secret")
    if cached is not None:
        return cached
    field = "totp_id" if isinstance(device, SealedTOTPDevice) else "static_id"
    seal = OtpSeal.objects.select_related("blob").filter(**{field: device.pk}).first() if device.pk else None
    if seal is None:
        raise IntegrityError(f"two-factor device {device.pk} has no sealed secret in the vault; enrol it again")
    secret = vault.blob_read(seal.blob, max_bytes=MAX_SECRET_BYTES)
    device.__dict__["_sealed_secret"] = secret
    return secret


# --- TOTP -------------------------------------------------------------------------------------


def as_sealed(device) -> SealedTOTPDevice:
    """`device` as the proxy that reads the sealed seed (a plain TOTPDevice is read again)."""
    if isinstance(device, SealedTOTPDevice):
        return device
    return SealedTOTPDevice.objects.get(pk=device.pk)


@transaction.atomic
def totp_device_create(*, user, name: str, confirmed: bool = False, seed: bytes | None = None) -> SealedTOTPDevice:
    """A TOTP device for `user` whose seed (random, or `seed`) is sealed in the vault."""
    seed = seed if seed is not None else os.urandom(SEED_BYTES)
    device = SealedTOTPDevice.objects.create(user=user, name=name, confirmed=confirmed, key=KEY_MARKER)
    OtpSeal.objects.create(totp=device, blob=secret_seal(seed, purpose=TOTP_PURPOSE))
    device.__dict__["_sealed_secret"] = seed
    return device


def totp_seal_existing(device) -> bool:
    """Seal the clear hex seed of a TOTP device saved by another path (a platform admin adding one
    in the admin site) and put the marker in its `key` column. False if it is sealed already."""
    if device.key == KEY_MARKER or OtpSeal.objects.filter(totp_id=device.pk).exists():
        return False
    seed = bytes.fromhex(device.key)
    with transaction.atomic():
        OtpSeal.objects.create(totp_id=device.pk, blob=secret_seal(seed, purpose=TOTP_PURPOSE))
        type(device).objects.filter(pk=device.pk).update(key=KEY_MARKER)
    device.key = KEY_MARKER
    return True


# --- recovery codes ---------------------------------------------------------------------------


def _normalise(code) -> str:
    return str(code or "").strip().replace(" ", "").replace("-", "").lower()


def code_hash(key: bytes, code: str) -> str:
    """The stored form of a recovery code: HMAC-SHA256 under the set's key, base64url, 16 chars."""
    mac = hmac.new(key, _normalise(code).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:HASH_CHARS]


def recovery_code_hash(device, code) -> str:
    """The hash `code` would be stored as in `device`'s set ("" for an empty code)."""
    if not _normalise(code):
        return ""
    return code_hash(device_secret(device), code)


@transaction.atomic
def recovery_set_create(*, user, name: str, codes: list[str]) -> SealedStaticDevice:
    """A confirmed recovery-code set holding only keyed hashes of `codes`, under a fresh sealed key."""
    key = os.urandom(RECOVERY_KEY_BYTES)
    device = SealedStaticDevice.objects.create(user=user, name=name, confirmed=True)
    OtpSeal.objects.create(static=device, blob=secret_seal(key, purpose=RECOVERY_PURPOSE))
    device.__dict__["_sealed_secret"] = key
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code_hash(key, code)) for code in codes])
    return device


# --- signals -----------------------------------------------------------------------------------


@receiver(post_delete, sender=OtpSeal)
def otp_seal_removed(sender, instance, **kwargs):
    """A device's seal went (with its device): its blob's row goes now, its ciphertext at commit."""
    blob = VaultBlob.objects.filter(pk=instance.blob_id).first()
    if blob is not None:
        vault.blob_delete(blob)


@receiver(post_save, sender=TOTPDevice)
def totp_device_saved_in_clear(sender, instance, **kwargs):
    """A plain TOTPDevice saved with a seed in `key` (the admin site's add form): seal it at once."""
    totp_seal_existing(instance)
