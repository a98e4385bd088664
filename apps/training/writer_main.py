"""Entry point of the worker's writer process: `python -m apps.training.writer_main <fd>`.

Django must be set up before a model is imported, so the serving code
(`apps.training.writer_process.serve`) is imported after `django.setup()`; nothing imports this
module, so that late import hides no cycle.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection

import django


def main() -> None:
    # Finish what was sent, even when the whole process group is told to stop: end-of-file from the
    # worker process (which stops on its own terms) ends this one; SIGKILL still works.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd = int(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")  # as manage.py: which settings module
    django.setup()
    from apps.training.writer_process import serve

    serve(Connection(fd))


if __name__ == "__main__":
    main()
