"""What both data-subject commands share: their arguments and the actor they run as."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from apps.core.audit import system_user


def add_subject_arguments(parser) -> None:
    parser.add_argument("key", help="the entity key; several join keys: their values in order, comma-separated")
    parser.add_argument("--entity", default=None, help="only this entity (default: every entity the key fits)")
    parser.add_argument(
        "--as", dest="as_user", default=None,
        help="the platform admin the request is recorded for (default: the system account)",
    )  # fmt: skip


def actor_for(username: str | None):
    if username is None:
        return system_user()
    user = get_user_model().objects.filter(username=username, is_active=True, is_superuser=True).first()
    if user is None:
        raise CommandError(f"No active platform admin called {username!r}.")
    return user


def command_error(exc: ValidationError) -> CommandError:
    return CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
