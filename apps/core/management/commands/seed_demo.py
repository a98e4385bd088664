"""Demo users for each role, a team, and sample objects from every app that has a `seed` module.

Works on its own: it applies migrations, and in the embedded mode starts the bundled Redis for
its own run when none is up (in the services mode it refuses before changing anything when Redis
is unreachable). The users' random passwords are saved to var/demo-logins.txt (0600) in the same
step that creates them, before anything else can fail, so they are never lost.
"""

import contextlib
import logging
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts import roles
from apps.accounts.models import Team
from apps.accounts.services import team_create
from apps.core.audit import acting_as, system_user
from apps.core.embedded_redis import port_is_free, start_redis, wait_for_redis
from apps.core.realtime import flush_sends
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


@contextlib.contextmanager
def _quiet_logs():
    """The portal's INFO logs (export parity, stale runs) would interleave with the summary."""
    logger = logging.getLogger("apps")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class Command(BaseCommand):
    help = "Create demo users (random passwords, printed once; development only), a team and sample data."

    def add_arguments(self, parser):
        parser.add_argument("--quiet-if-present", action="store_true", help="say nothing if users already exist")
        parser.add_argument(
            "--no-print-logins", action="store_true", help="save the logins but do not print them (`up` shows them)"
        )

    def handle(self, *args, quiet_if_present=False, no_print_logins=False, **options):
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates accounts with printed passwords; it refuses to run in production.")
        with self._redis():  # before any change: refuse, or start the embedded one for this run
            call_command("migrate", interactive=False, verbosity=0)
            with acting_as(system_user()):
                created = self._users()
                users = {
                    u.username: u for u in get_user_model().objects.filter(username__in=[d[0] for d in DEMO_USERS])
                }
                team = self._team(users)
                with _quiet_logs():  # each seed prints its own one-line summary
                    for label, module in portal_app_modules("seed"):
                        self.stdout.write(f"seeding {label} ...")
                        module.seed(users=users, team=team, out=self.stdout)
        if created and not no_print_logins:
            self.stdout.write("Demo logins (shown once; also saved to var/demo-logins.txt, readable only by you):")
            for username, password, role in created:
                self.stdout.write(f"  {username:<10} {password:<24} {role}")
        elif not created and not quiet_if_present:
            self.stdout.write("Demo users already exist; their passwords are in var/demo-logins.txt.")

    @contextlib.contextmanager
    def _redis(self):
        """Redis for the seeding (online features, live messages): the one configured, else the
        embedded one started for this run and stopped after it."""
        try:
            wait_for_redis(settings.REDIS_URL, timeout=2)
        except RuntimeError as exc:
            if not settings.EMBEDDED_REDIS:
                raise CommandError(
                    f"Redis at REDIS_URL is unreachable ({exc}); start it, then run seed_demo again."
                ) from None
        else:
            yield
            return
        port = settings.EMBEDDED_REDIS_PORT
        if not port_is_free(port):
            raise CommandError(f"Port {port} (PORTAL_REDIS_PORT) is taken by something that is not Redis.")
        self.stdout.write(f"starting the embedded Redis on 127.0.0.1:{port} for seeding ...")
        log_dir = settings.VAR_DIR / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        process = start_redis(port=port, data_dir=settings.VAR_DIR / "redis", log_file=log_dir / "redis.log")
        try:
            yield
        finally:
            flush_sends()  # live messages queued by the seeding go out before their Redis stops
            process.terminate()
            process.wait(20)

    def _users(self) -> list[tuple[str, str, str]]:
        """Create the missing demo users and save their logins in the same transaction: the file is
        written before the commit, so a user whose password is not on disk never exists."""
        with transaction.atomic():
            created = self._create_users()
            if created:
                self._save_logins(created)
        return created

    def _save_logins(self, created: list[tuple[str, str, str]]) -> None:
        path = settings.VAR_DIR / "demo-logins.txt"
        previous = path.read_text() if path.exists() else ""
        fresh = {u for u, _, _ in created}
        kept = [line for line in previous.splitlines(keepends=True) if line.split(" ", 1)[0] not in fresh]
        tmp = path.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)
        tmp.write_text("".join(kept) + "".join(f"{u:<10} {p:<24} {r}\n" for u, p, r in created))
        tmp.replace(path)

    def _create_users(self) -> list[tuple[str, str, str]]:
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
