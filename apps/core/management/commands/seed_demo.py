"""Demo users for each role, a team, and sample objects from every app that has a `seed` module."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts import roles
from apps.accounts.models import Team
from apps.accounts.services import team_create
from apps.core.audit import acting_as, system_user
from portal.discovery import portal_app_modules

DEMO_USERS = [
    ("engineer", "Maya", "Engineer", [roles.ML_ENGINEERS]),
    ("engineer2", "Omar", "Engineer", [roles.ML_ENGINEERS]),
    ("steward", "Dana", "Steward", [roles.DATA_STEWARDS]),
    ("approver", "Layla", "Approver", [roles.APPROVERS]),
    ("admin", "Sam", "Admin", [roles.PLATFORM_ADMINS]),
    ("auditor", "Noor", "Auditor", [roles.AUDITORS]),
    ("viewer", "Vic", "Viewer", [roles.VIEWERS]),
]
DEMO_TEAM = ("risk-analytics", "Risk Analytics", ["engineer", "engineer2", "steward"])


class Command(BaseCommand):
    help = "Create demo users (random passwords, printed once; development only), a team and sample data."

    def add_arguments(self, parser):
        parser.add_argument("--quiet-if-present", action="store_true", help="say nothing if users already exist")

    def handle(self, *args, quiet_if_present=False, **options):
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates accounts with printed passwords; it refuses to run in production.")
        with acting_as(system_user()):
            created = self._users()
            users = {u.username: u for u in get_user_model().objects.filter(username__in=[d[0] for d in DEMO_USERS])}
            team = self._team(users)
            for label, module in portal_app_modules("seed"):
                self.stdout.write(f"seeding {label} ...")
                module.seed(users=users, team=team, out=self.stdout)
        if created:
            path = settings.VAR_DIR / "demo-logins.txt"
            path.write_text("".join(f"{u:<10} {p:<24} {r}\n" for u, p, r in created))
            path.chmod(0o600)
            self.stdout.write("Demo logins (shown once; also saved to var/demo-logins.txt, readable only by you):")
            for username, password, role in created:
                self.stdout.write(f"  {username:<10} {password:<24} {role}")
        elif not quiet_if_present:
            self.stdout.write("Demo users already exist; their passwords are in var/demo-logins.txt.")

    @transaction.atomic
    def _users(self) -> list[tuple[str, str, str]]:
        created = []
        User = get_user_model()
        for username, first, last, role_names in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(
                username=username,
                password=password,
                first_name=first,
                last_name=last,
                email=f"{username}@example.com",
            )
            if username == "admin":
                user.is_staff = user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])
            user.groups.add(*Group.objects.filter(name__in=role_names))
            created.append((username, password, ", ".join(role_names)))
        return created

    def _team(self, users) -> Team:
        slug, name, members = DEMO_TEAM
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            team = team_create(
                name=name,
                slug=slug,
                description="Credit-risk and fraud models.",
                members=[users[m] for m in members if m in users],
            )
        return team
