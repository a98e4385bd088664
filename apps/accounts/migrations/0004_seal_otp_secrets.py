"""Seal the two-factor secrets already in the database (issue 17).

Forwards: each TOTP device's hex seed goes into a vault blob (purpose ``totp-seed``) and its `key`
column gets the marker ``sealed-in-vault``; each recovery-code set gets a fresh sealed key and its
clear codes are replaced by their keyed hashes. Needs the vault's key ring (as every start does).

Backwards: TOTP seeds are written back into `key` in clear and their blobs removed. Recovery codes
cannot be recovered from their hashes, so the sealed recovery-code sets are deleted (their owners
make new codes on their profile page, signed in with their authenticator).
"""

import io
import os

from django.db import migrations

KEY_MARKER = "sealed-in-vault"
TOTP_PURPOSE = "totp-seed"
RECOVERY_PURPOSE = "recovery-code-key"


def _blob(secret: bytes, purpose: str) -> int:
    from apps.core import vault

    return vault.blob_store(io.BytesIO(secret), purpose=purpose).pk


def seal_clear_secrets(apps, schema_editor):
    from apps.accounts.sealed_otp import code_hash

    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    StaticDevice = apps.get_model("otp_static", "StaticDevice")
    StaticToken = apps.get_model("otp_static", "StaticToken")
    OtpSeal = apps.get_model("accounts", "OtpSeal")
    sealed_totp = set(OtpSeal.objects.filter(totp__isnull=False).values_list("totp_id", flat=True))
    for device in TOTPDevice.objects.exclude(key=KEY_MARKER).exclude(pk__in=sealed_totp).iterator():
        seed = bytes.fromhex(device.key)
        OtpSeal.objects.create(totp_id=device.pk, blob_id=_blob(seed, TOTP_PURPOSE))
        TOTPDevice.objects.filter(pk=device.pk).update(key=KEY_MARKER)
    sealed_static = set(OtpSeal.objects.filter(static__isnull=False).values_list("static_id", flat=True))
    for device in StaticDevice.objects.exclude(pk__in=sealed_static).iterator():
        key = os.urandom(32)
        OtpSeal.objects.create(static_id=device.pk, blob_id=_blob(key, RECOVERY_PURPOSE))
        for pk, token in StaticToken.objects.filter(device_id=device.pk).values_list("pk", "token"):
            StaticToken.objects.filter(pk=pk).update(token=code_hash(key, token))


def unseal_totp_seeds(apps, schema_editor):
    from apps.core import vault

    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    StaticDevice = apps.get_model("otp_static", "StaticDevice")
    OtpSeal = apps.get_model("accounts", "OtpSeal")
    VaultBlob = apps.get_model("core", "VaultBlob")
    names = []
    for seal in OtpSeal.objects.all():
        blob = VaultBlob.objects.get(pk=seal.blob_id)
        seal.delete()
        if seal.totp_id is not None:
            seed = b"".join(vault.blob_chunks(blob))
            TOTPDevice.objects.filter(pk=seal.totp_id).update(key=seed.hex())
        else:
            StaticDevice.objects.filter(pk=seal.static_id).delete()
        names.append(blob.storage_key)
        blob.delete()
    for name in names:
        vault.blob_discard(name)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_otp_seal"),
    ]

    operations = [
        migrations.RunPython(seal_clear_secrets, unseal_totp_seeds),
    ]
