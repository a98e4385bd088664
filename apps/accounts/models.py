from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone


class Team(models.Model):
    """A team is backed by an auth Group so that guardian can grant it object permissions."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="team")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def members(self):
        return self.group.user_set.all()


class ApiToken(models.Model):
    """A scoped, expiring API key. Only a SHA-256 of the secret is stored; the key is shown once."""

    SCOPES = (
        ("read", "Read: GET requests and live updates"),
        ("write", "Write: create, change and delete"),
        ("predict", "Predict: call serving endpoints"),
        ("features", "Features: online feature reads and pushes"),
        ("metrics", "Metrics: scrape /metrics (platform admins' tokens only)"),
        ("admin", "Admin: platform-admin actions (platform admins' tokens only)"),
    )

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    # `predict` tokens name the serving endpoints they may call (none named: none) and may carry
    # their own rate ("600/m"), besides their user's.
    endpoints = models.JSONField(default=list, blank=True)
    rate = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


# Two-factor secrets sealed in the vault (issue 17): the models live with their logic.
from apps.accounts.sealed_otp import OtpSeal, SealedStaticDevice, SealedTOTPDevice  # noqa: E402, F401
