"""Two-factor secrets sealed in the vault (issue 17): no TOTP seed and no recovery code in clear in
the database, codes still verify (also after a key rotation), recovery codes work once, and the
data migration seals devices made before it."""

from __future__ import annotations

import importlib
from base64 import b32decode

import pytest
from auditlog.registry import auditlog
from django.apps import apps as django_apps
from django.test import RequestFactory
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import sealed_otp, stepup, twofactor
from apps.accounts.models import OtpSeal, SealedStaticDevice, SealedTOTPDevice
from apps.core import vault
from apps.core.models import VaultBlob
from tests.accounts.otp_helpers import enrolled

pytestmark = pytest.mark.django_db
MIGRATION = importlib.import_module("apps.accounts.migrations.0004_seal_otp_secrets")


@pytest.fixture(autouse=True)
def enforced(settings):
    settings.PORTAL_2FA_ENFORCED = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def seed_shown(device) -> bytes:
    """The seed as the user gets it: from the secret text on the enrolment page (base32)."""
    text = twofactor.totp_secret_text(device).replace(" ", "")
    return b32decode(text + "=" * (-len(text) % 8))


def code_from(seed: bytes, *, steps_ahead: int = 0) -> str:
    """What an authenticator app holding `seed` shows (django-otp's defaults: 30 s, 6 digits)."""
    totp = TOTP(seed, 30, 0, 6, 0)
    totp.time += steps_ahead * 30
    return f"{totp.token():06d}"


def row_text(model, pk) -> str:
    return " ".join(str(v) for v in model.objects.filter(pk=pk).values().get().values()).lower()


def assert_not_stored(secret_hex: str, device_pk: int) -> None:
    assert secret_hex not in row_text(TOTPDevice, device_pk)
    for blob in VaultBlob.objects.all():
        assert secret_hex not in row_text(VaultBlob, blob.pk)
        assert bytes.fromhex(secret_hex) not in vault.storage().open(blob.storage_key).read()


def test_the_device_row_holds_no_seed_and_a_code_from_the_qr_secret_verifies(owner):
    device = twofactor.totp_enrol_start(user=owner)
    seed = seed_shown(device)
    assert len(seed) == sealed_otp.SEED_BYTES and f"secret={twofactor.totp_secret_text(device).replace(' ', '')}" in (
        device.config_url
    )
    assert TOTPDevice.objects.get(pk=device.pk).key == sealed_otp.KEY_MARKER
    assert OtpSeal.objects.get(totp=device).blob.purpose == sealed_otp.TOTP_PURPOSE
    assert_not_stored(seed.hex(), device.pk)

    codes = twofactor.totp_enrol_confirm(user=owner, device=device, code=code_from(seed))
    assert twofactor.has_device(owner) and len(codes) == 10
    assert_not_stored(seed.hex(), device.pk)
    # A fresh read of the row (no cached seed) verifies a code the app shows next.
    assert twofactor.second_factor_check(owner, code_from(seed, steps_ahead=1), totp_only=True) is not None
    # django-otp's own model reads `key`, which is no key: it refuses, it cannot accept a guess.
    plain = TOTPDevice.objects.get(pk=device.pk)
    with pytest.raises(ValueError):
        plain.verify_token(code_from(seed))


def test_step_up_takes_a_code_from_the_sealed_seed(owner):
    device, _codes = enrolled(owner)
    seed = seed_shown(device)
    request = RequestFactory().post("/")
    request.user = owner
    assert stepup.step_up_needed(owner)
    assert not stepup.step_up_passed(request, "000000" if code_from(seed, steps_ahead=1) != "000000" else "111111")
    assert stepup.step_up_passed(request, code_from(seed, steps_ahead=1), action="test")


def test_key_rotation_rewraps_the_seals_and_codes_keep_working(owner):
    device, codes = enrolled(owner)
    seed = seed_shown(device)
    seals = list(OtpSeal.objects.filter(totp=device) | OtpSeal.objects.filter(static__user=owner))
    assert len(seals) == 2
    old_kid = vault.keyring().active_kid
    report = vault.keys_rotate(new_kid="totp-rot1", generate=True)
    assert report["rewrapped"] >= 2 and report["failed"] == 0
    for seal in seals:
        seal.blob.refresh_from_db()
        assert seal.blob.kid == "totp-rot1"
    # The old master key gone: the seed and the recovery key are read under the new one.
    vault._write_ring_file(vault.keyring_path(), vault.keyring().without(old_kid))
    assert twofactor.second_factor_check(owner, code_from(seed, steps_ahead=1)) is not None
    assert isinstance(twofactor.second_factor_check(owner, codes[0]), StaticDevice)


def test_recovery_codes_are_stored_hashed_and_work_once(owner):
    _device, codes = enrolled(owner)
    stored = set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))
    assert len(stored) == 10 and not stored & set(codes)
    assert all(
        code not in row_text(StaticToken, pk)
        for pk in StaticToken.objects.values_list("pk", flat=True)
        for code in codes
    )
    assert OtpSeal.objects.get(static__user=owner).blob.purpose == sealed_otp.RECOVERY_PURPOSE
    # The stored form is the keyed hash, not a plain digest of the code.
    key = sealed_otp.device_secret(SealedStaticDevice.objects.get(user=owner))
    assert stored == {sealed_otp.code_hash(key, code) for code in codes}

    assert isinstance(twofactor.second_factor_check(owner, codes[3].upper()), StaticDevice)
    assert twofactor.recovery_codes_left(owner) == 9
    assert twofactor.second_factor_check(owner, codes[3]) is None  # used up
    # A stored hash typed as a code is not a code.
    assert twofactor.second_factor_check(owner, next(iter(stored))) is None
    assert twofactor.recovery_codes_left(owner) == 9


def test_removing_devices_removes_their_sealed_blobs(owner, settings):
    settings.PORTAL_2FA_ENFORCED = False
    enrolled(owner)
    blob_pks = list(OtpSeal.objects.values_list("blob_id", flat=True))
    assert len(blob_pks) == 2
    twofactor.recovery_codes_issue(user=owner)  # the old set and its key go
    assert OtpSeal.objects.count() == 2 and VaultBlob.objects.filter(pk__in=blob_pks).count() == 1
    twofactor.two_factor_remove(user=owner)
    assert not OtpSeal.objects.exists() and not VaultBlob.objects.filter(purpose__in=("totp-seed", "recovery-code-key"))


def test_a_clear_device_saved_by_another_path_is_sealed_at_once(owner):
    seed = bytes(range(1, 21))
    device = TOTPDevice.objects.create(user=owner, name="added in the admin", key=seed.hex(), confirmed=True)
    assert TOTPDevice.objects.get(pk=device.pk).key == sealed_otp.KEY_MARKER
    assert_not_stored(seed.hex(), device.pk)
    assert twofactor.second_factor_check(owner, code_from(seed), totp_only=True) is not None
    # Recovery codes added in clear (the admin's inline) have no sealed key: they match nothing.
    clear = StaticDevice.objects.create(user=owner, name="clear", confirmed=True)
    StaticToken.objects.create(device=clear, token="qrstuvwx")
    assert twofactor.second_factor_check(owner, "qrstuvwx") is None


def test_the_migration_seals_existing_clear_devices_and_codes(owner):
    seed = bytes(range(100, 120))
    # Rows as they were before the migration (bulk_create: no signal seals them).
    TOTPDevice.objects.bulk_create([TOTPDevice(user=owner, name="old", key=seed.hex(), confirmed=True)])
    device = TOTPDevice.objects.get(user=owner)
    recovery = StaticDevice.objects.create(user=owner, name="old codes", confirmed=True)
    StaticToken.objects.bulk_create([StaticToken(device=recovery, token=t) for t in ("abcdefgh", "ijklmnop")])
    assert seed.hex() in row_text(TOTPDevice, device.pk)

    MIGRATION.seal_clear_secrets(django_apps, None)
    MIGRATION.seal_clear_secrets(django_apps, None)  # a second run changes nothing
    assert OtpSeal.objects.count() == 2
    assert TOTPDevice.objects.get(pk=device.pk).key == sealed_otp.KEY_MARKER
    assert_not_stored(seed.hex(), device.pk)
    assert not {"abcdefgh", "ijklmnop"} & set(StaticToken.objects.values_list("token", flat=True))
    assert seed_shown(SealedTOTPDevice.objects.get(pk=device.pk)) == seed
    assert twofactor.second_factor_check(owner, code_from(seed)) is not None
    assert isinstance(twofactor.second_factor_check(owner, "ijklmnop"), StaticDevice)
    assert twofactor.second_factor_check(owner, "ijklmnop") is None

    # Backwards: the seed goes back into `key`; recovery codes (only hashes left) are dropped.
    MIGRATION.unseal_totp_seeds(django_apps, None)
    assert TOTPDevice.objects.get(pk=device.pk).key == seed.hex()
    assert not OtpSeal.objects.exists() and not StaticDevice.objects.filter(user=owner).exists()


def test_sealed_rows_are_not_row_audited():
    """Like django-otp's own models: every verify saves the device (throttle counters), which
    would write a chained audit entry per failed code; 2FA changes are audited as 2fa.* events."""
    assert not any(auditlog.contains(m) for m in (OtpSeal, SealedTOTPDevice, SealedStaticDevice, TOTPDevice))
