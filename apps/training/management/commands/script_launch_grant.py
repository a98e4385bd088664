"""`manage.py script_launch_grant <team> --admin <username> [--revoke]`: give (or take) a team's
script-launch permission, as a platform admin (audited under that admin's name)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Team
from apps.core.audit import acting_as
from apps.core.errors import Forbidden
from apps.training.scripts.services import script_launch_grant


class Command(BaseCommand):
    help = "Grant (or with --revoke, take back) a team's permission to launch training scripts."

    def add_arguments(self, parser):
        parser.add_argument("team", help="the team's slug")
        parser.add_argument("--admin", required=True, help="the platform admin granting it (named in the audit)")
        parser.add_argument("--revoke", action="store_true")

    def handle(self, team, admin, revoke=False, **options):
        found = Team.objects.filter(slug=team).select_related("group").first()
        if found is None:
            raise CommandError(f"No team {team!r}.")
        actor = get_user_model().objects.filter(username=admin, is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user called {admin!r}.")
        with acting_as(actor):
            try:
                changed = script_launch_grant(team=found, actor=actor, granted=not revoke)
            except Forbidden as exc:
                raise CommandError(str(exc)) from None
        state = "may no longer" if revoke else "may"
        self.stdout.write(f"Team {found.slug} {state} launch training scripts{'' if changed else ' (unchanged)'}.")
