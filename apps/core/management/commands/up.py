import signal
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.core.launcher import Launcher
from apps.core.recovery import recover_all


class Command(BaseCommand):
    help = "Start the whole portal: (embedded Redis,) web + WebSockets, Celery worker(s) and beat. Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="do not start Celery workers")
        parser.add_argument("--no-beat", action="store_true", help="do not start Celery beat")
        parser.add_argument("--demo", action="store_true", help="create demo users and data if missing")

    def handle(self, host, port, no_worker, no_beat, demo, **options):
        launcher = Launcher(host=host, port=port, worker=not no_worker, beat=not no_beat)
        stop_requested = []

        def request_stop(signum, _frame):
            stop_requested.append(signum)
            launcher._stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        code = 0
        try:
            mode = "embedded (SQLite + bundled Redis)" if settings.EMBEDDED_DATABASE else "services (DATABASE_URL)"
            launcher.say(f"mode: {mode}; data under {settings.VAR_DIR}")
            launcher.start_infrastructure()
            launcher.say("applying database migrations")
            call_command("migrate", interactive=False, verbosity=0)
            if demo:
                call_command("seed_demo", quiet_if_present=True, no_print_logins=True)
            launcher.start_processes()
            launcher.say("waiting for the web process and a worker to report healthy ...")
            health = launcher.wait_until_ready()
            self._recover(launcher)
            self._banner(launcher, health)
            code = launcher.serve_forever()
        except SystemExit as exc:
            if not launcher._stopping.is_set():
                self.stderr.write(str(exc.code))
                code = 1
        finally:
            launcher.say("stopping ...")
            launcher.stop()
            launcher.say("all processes stopped")
        sys.exit(code)

    def _recover(self, launcher) -> None:
        """Jobs that were queued or running when the portal last stopped (or was killed) are
        re-dispatched or resumed now, not at the first scheduled check a minute later."""
        report = recover_all()
        done = {app: counts for app, counts in report.items() if any(v for v in counts.values())}
        if done:
            launcher.say(f"recovered jobs from before the restart: {done}")

    def _banner(self, launcher, health):
        queues = ", ".join(f"{q} ({n})" for q, n in sorted(health["workers"]["queues"].items())) or "none"
        lines = [
            "",
            f"  MLOps Portal is up:  http://{launcher.host}:{launcher.port}/",
            f"  API docs:            http://{launcher.host}:{launcher.port}/api/v1/docs/",
            f"  Worker queues:       {queues}",
        ]
        logins = settings.VAR_DIR / "demo-logins.txt"
        if not settings.PRODUCTION and logins.exists():
            lines += ["", "  Demo logins (development only; also in var/demo-logins.txt):"]
            lines += [f"    {line}" for line in logins.read_text().splitlines() if line.strip()]
        lines += ["", "  Press Ctrl-C to stop everything.", ""]
        self.stdout.write("\n".join(lines))
