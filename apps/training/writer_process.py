"""The worker's writer process: a training job's portal writes, off the training process's GIL.

A writer thread shares the GIL with the training thread: every millisecond of ORM and vault work
it does is one the training loop's Python waits for (4-8% of a short epoch's time). So each
worker process that trains starts one long-lived helper, `python -m apps.training.writer_main`
(a fresh interpreter started through apps.training.writer_main: forking the trainer would make it
pay copy-on-write faults on every page it touches), connected by a socket pair. Per job it opens a session that owns a `JobWriter`;
the training side's `ProcessSink` sends it operations through a feeder thread (so a busy writer
never blocks a step) and a reader thread takes back cancel requests, errors and the summary.

Failure handling: if the helper dies, every open session fails with `WriterLost` (the job then
fails or is retried like any other error) and the next job starts a new helper. If the worker
process dies, the helper finishes the operations it was sent (the last checkpoint lands) and exits:
on end-of-file, or, should a forked child still hold the socket open, as soon as it sees its parent
gone (PR_SET_PDEATHSIG and a parent-id check, apps/training/writer_main.py). It ignores Ctrl-C and SIGTERM sent to the whole process
group, so that a shutdown leaves that order intact; a write that outlives the close timeout kills it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import close_old_connections, connections

from apps.core.audit import acting_as
from apps.training.jobwriter import STOP_CHECK_EVERY_S, JobWriter
from apps.training.models import TrainingJob
from apps.training.search import pruner_for

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 600.0


class WriterLost(RuntimeError):
    """The writer process exited or stopped answering."""


# --- the training side ---------------------------------------------------------------------------
class ProcessSink:
    """One job's session in the writer process (see apps.training.sinks for the interface)."""

    _ids = itertools.count(1)

    def __init__(self, job_id: int, *, prune: bool = False) -> None:
        self.id = next(self._ids)
        self.stop = False
        self.error: BaseException | None = None
        self.result: dict[str, Any] | None = None
        self.done = threading.Event()
        self.process = WriterProcess.get()
        self.process.open(self, job_id, prune)

    def submit(self, op: str, *args: Any) -> None:
        if self.error is not None:
            raise self.error
        self.process.send(("op", self.id, op, args))

    def should_stop(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.stop

    def close(self) -> dict[str, Any]:
        self.process.send(("close", self.id))
        if not self.done.wait(CLOSE_TIMEOUT_S):
            # Stop it: a resumed attempt must not be written behind this session's late writes.
            self.process.proc.kill()
            self.error = self.error or WriterLost(f"the writer process did not finish in {CLOSE_TIMEOUT_S:.0f} s")
        self.process.forget(self)
        if self.error is not None:
            raise self.error
        return self.result or {}


class WriterProcess:
    """The helper process of this (worker) process, started on first use and again if it died."""

    _current: WriterProcess | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> WriterProcess:
        with cls._lock:
            current = cls._current
            if current is None or not current.alive or current.owner_pid != os.getpid():
                current = cls._current = cls()
            return current

    def __init__(self, env: dict[str, str] | None = None) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(  # noqa: S603  fixed argv (this Python, a module, two ints), no shell
            [sys.executable, "-m", "apps.training.writer_main", str(theirs.fileno()), str(os.getpid())],
            pass_fds=(theirs.fileno(),),
            cwd=str(settings.BASE_DIR),
            stdin=subprocess.DEVNULL,
            env=env,  # None: this process's environment (settings, database, Redis)
        )
        theirs.close()
        self.sock = ours  # kept for shutdown(); the connection works on a duplicate descriptor
        self.conn = Connection(os.dup(ours.fileno()))
        self.closing = False
        self.owner_pid = os.getpid()
        self.alive = True
        self.sessions: dict[int, ProcessSink] = {}
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._feed, name="training-writer-feed", daemon=True).start()
        threading.Thread(target=self._read, name="training-writer-read", daemon=True).start()

    def open(self, sink: ProcessSink, job_id: int, prune: bool = False) -> None:
        self.sessions[sink.id] = sink
        if not self.alive:  # lost between get() and now
            sink.error = WriterLost("the writer process exited")
            sink.done.set()
        self.send(("open", sink.id, job_id, prune))

    def forget(self, sink: ProcessSink) -> None:
        self.sessions.pop(sink.id, None)

    def send(self, message: tuple) -> None:
        self.outbox.put(message)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Let the helper finish what it was sent and exit (it reads end-of-file)."""
        self.closing = True
        self.outbox.put(None)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _feed(self) -> None:
        while True:
            message = self.outbox.get()
            if message is None:
                if self.alive:
                    with contextlib.suppress(OSError):
                        self.sock.shutdown(socket.SHUT_WR)  # end-of-file for the helper; replies still come
                return
            try:
                self.conn.send(message)  # pickling a checkpoint is a copy; the write drops the GIL
            except Exception:  # a broken socket, or a message that cannot be pickled or allocated
                if not self.alive:
                    return  # already lost (the reader closed the connection)
                log.exception("training writer: sending to the writer process failed")
                self.proc.kill()
                self._lost()
                return

    def _read(self) -> None:
        while True:
            try:
                kind, sid, *rest = self.conn.recv()
            except Exception as exc:  # end-of-file, or a reply that cannot be read: the writer is lost
                if not isinstance(exc, EOFError | OSError):
                    log.exception("training writer: a reply from the writer process could not be read")
                    self.proc.kill()
                self._lost()
                return
            sink = self.sessions.get(sid)
            if sink is None:
                continue
            if kind == "stop":
                sink.stop = True
            elif kind == "error":
                sink.error = rest[0]
            elif kind == "closed":
                sink.result = rest[0]
                sink.done.set()

    def _lost(self) -> None:
        if not self.alive:
            return
        self.alive = False
        try:
            code = self.proc.wait(2)  # end-of-file comes just before the exit
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = "killed: it stopped answering"
        self.outbox.put(None)  # ends the feeder thread if it is waiting for work
        for closable in (self.conn, self.sock):
            with contextlib.suppress(OSError):
                closable.close()
        if not self.closing:
            log.error("the training writer process exited (code %s); its open jobs resume or fail", code)
        for sink in list(self.sessions.values()):
            sink.error = sink.error or WriterLost(f"the writer process exited (code {code}; see the worker log)")
            sink.done.set()


# --- the writer process --------------------------------------------------------------------------
class _Session:
    def __init__(self, writer) -> None:
        self.writer = writer
        self.error: BaseException | None = None
        self.stop_sent = False
        self.cpu_s = 0.0


class _Replies:
    """Sends replies to the worker process; once it is gone, drops them (the work still gets done)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.gone = False

    def send(self, message: tuple) -> None:
        if not self.gone:
            try:
                self.conn.send(message)
            except OSError:
                self.gone = True


def serve(conn: Connection, parent_pid: int | None = None) -> None:
    """Run operations in the order they come; between them, poll each open job's cancel flag.

    Returns at end-of-file, or once `parent_pid` is no longer the parent (after the operations
    already waiting in the socket)."""
    sessions: dict[int, _Session] = {}
    replies = _Replies(conn)
    while True:
        try:
            if parent_pid is not None and os.getppid() != parent_pid:
                _drain(conn, replies, sessions)
                return
            message = conn.recv() if conn.poll(STOP_CHECK_EVERY_S) else None
        except (EOFError, OSError):
            return  # the worker process is gone; everything it sent has been done
        if message is not None:
            _handle(replies, sessions, message)
        for sid, session in sessions.items():
            _check_stop(replies, sid, session)


def _drain(conn: Connection, replies: _Replies, sessions: dict[int, _Session]) -> None:
    """The parent died: do what it had sent already, without waiting for more."""
    log.warning("training writer: the worker process is gone; finishing what it sent, then exiting")
    while conn.poll(0):
        _handle(replies, sessions, conn.recv())


def _handle(conn: _Replies, sessions: dict[int, _Session], message: tuple) -> None:
    kind, sid, *rest = message
    if kind == "open":
        sessions[sid] = session = _Session(None)
        try:
            session.writer = _open_writer(*rest)
        except Exception as exc:
            _fail(conn, sid, session, exc)
    elif kind == "op":
        session = sessions.get(sid)
        if session is None or session.error is not None:
            return
        op, args = rest
        started = time.process_time()
        try:
            close_old_connections()  # reconnect between writes if the connection died or aged out
            with acting_as(session.writer.job.owner):
                getattr(session.writer, f"write_{op}")(*args)
        except Exception as exc:
            _fail(conn, sid, session, exc)
        session.cpu_s += time.process_time() - started
    elif kind == "close":
        session = sessions.pop(sid, None)
        summary = session.writer.summary() if session is not None and session.writer is not None else {}
        if session is not None:  # the job's accounting adds it: this CPU is not the trainer's process's
            summary["writer_cpu_s"] = round(session.cpu_s, 4)
        conn.send(("closed", sid, summary))
        if not sessions:  # idle until the next job: hold no database connection meanwhile
            connections.close_all()


def _open_writer(job_id: int, prune: bool) -> JobWriter:
    close_old_connections()  # a long-lived process: drop a connection that died or aged out
    # ...and the content-type ids it cached: the permission checks of the run writes look them up,
    # and a database that was restored or flushed meanwhile has new ones.
    ContentType.objects.clear_cache()
    job = TrainingJob.objects.select_related("run", "owner", "sweep").get(pk=job_id)
    return JobWriter(job, pruner=pruner_for(job) if prune else None)  # a sweep trial's median pruner


def _check_stop(conn: _Replies, sid: int, session: _Session) -> None:
    if session.writer is None or session.error is not None or session.stop_sent:
        return
    try:
        session.writer.poll_stop()
    except Exception:
        log.warning("job %s: cancel check failed", session.writer.job.pk, exc_info=True)
        return
    if session.writer.stop:
        session.stop_sent = True
        conn.send(("stop", sid))


def _fail(conn: _Replies, sid: int, session: _Session, exc: Exception) -> None:
    log.warning("training writer: session %s failed", sid, exc_info=True)
    session.error = exc
    conn.send(("error", sid, _portable(exc)))


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301  round-trips our own object in-process, no outside bytes
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
