"""Entry point of the worker's writer process: `python -m apps.training.writer_main <fd> <parent pid>`.

It dies with the process that started it: Linux sends it SIGUSR1 when that parent dies
(PR_SET_PDEATHSIG), and its serving loop also notices the new parent id within half a second
(`os.getppid()`, which covers a parent that died before prctl ran and platforms without it); it then
finishes the operations already sent and exits, so a kill -9 of the worker leaves nothing behind.

Django must be set up before a model is imported, so the serving code
(`apps.training.writer_process.serve`) is imported after `django.setup()`; nothing imports this
module, so that late import hides no cycle.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing.connection import Connection

import django

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def ask_for_parent_death_signal() -> None:
    """SIGUSR1 when the parent dies. The signal only interrupts the serving loop's wait (its
    handler does nothing): the loop decides by the parent id, so a signal sent because the
    *thread* that started this process ended (prctl's rule) while the parent lives is ignored."""
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    except (OSError, AttributeError):  # not Linux: the loop's parent check alone
        pass


def main() -> None:
    # Finish what was sent, even when the whole process group is told to stop: end-of-file from the
    # worker process (which stops on its own terms) ends this one; SIGKILL still works.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd = int(sys.argv[1])
    parent = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    ask_for_parent_death_signal()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")  # as manage.py: which settings module
    django.setup()
    from apps.training.writer_process import serve

    serve(Connection(fd), parent_pid=parent)


if __name__ == "__main__":
    main()
