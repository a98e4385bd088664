from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import VALID_SCOPES, token_create
from apps.core.audit import acting_as, system_user


class Command(BaseCommand):
    help = "Create an API token for a user and print its key once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=sorted(VALID_SCOPES),
            help="repeat for several scopes (default: read)",
        )
        parser.add_argument("--expires-days", type=int, default=settings.API_TOKEN_DEFAULT_DAYS)
        parser.add_argument("--name", default="command line")
        parser.add_argument(
            "--endpoint",
            action="append",
            dest="endpoints",
            help="with --scope predict: an endpoint it may call (repeat)",
        )
        parser.add_argument("--rate", default="", help="with --scope predict: its own rate, e.g. 600/m")

    def handle(self, username, scopes, expires_days, name, endpoints=None, rate="", **options):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user called {username!r}.")
        with acting_as(system_user()):
            try:
                token, key = token_create(
                    user=user,
                    name=name,
                    scopes=scopes or ["read"],
                    expires_days=expires_days,
                    endpoints=endpoints or [],
                    rate=rate,
                )
            except ValidationError as exc:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stderr.write(
            f"Token '{token.name}' for {username}, scopes {', '.join(token.scopes)}, "
            f"expires {token.expires_at:%Y-%m-%d}. Shown once:"
        )
        self.stdout.write(key)
