"""Ray's actor calls, as `executors.Dispatcher` makes them, served by worker processes of this machine: the local
executor with several workers schedules exactly as the Ray executor does (references of a seed first, then its cells,
one piece of work per idle worker), without Ray.

The driver keeps each worker's calls in order (a worker runs one at a time); a task's data, `put` once, is sent to a
worker with the first call that needs it. A worker whose process dies fails its pending calls with `ActorDied`, as
Ray's RayActorError; an exception raised inside a call comes back as `CallFailed` with the worker's own exception as
its `cause`.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import threading
import time
from collections import deque
from multiprocessing.connection import wait as wait_for_any
from types import SimpleNamespace

from mubench.core.faults import DiskFull, is_disk_full


class CallFailed(Exception):
    """A call that raised in its worker; `cause` is the worker's exception (or a RuntimeError with its text)."""

    def __init__(self, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class ActorDied(CallFailed):
    """The worker's process ended before answering."""


class WorkerLost(Exception):
    """Why a worker's calls went unanswered: its process ended (or never started)."""


exceptions = SimpleNamespace(RayError=CallFailed, RayActorError=ActorDied)  # the names the Dispatcher catches


class Handle:
    """Data `put` once by the driver; a worker receives it with the first call that carries it."""

    def __init__(self, number: int):
        self.number = number


class Call:
    """One pending call: its worker, and once answered its value or its error."""

    def __init__(self, actor: "Actor"):
        self.actor, self.done, self.value, self.error = actor, False, None, None

    def settle(self, value=None, error: CallFailed | None = None) -> None:
        self.done, self.value, self.error = True, value, error


class Actor:
    """A worker process hosting one instance of a class; `actor.method.remote(*args)` returns a Call."""

    def __init__(self, pool: "LocalActors", cls: type, args: tuple):
        self.pool = pool
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=serve, args=(child, cls, args, os.getpid()),
                                                                    daemon=True)
        self.process.start()
        child.close()
        self.pending: deque[Call] = deque()
        self.sent: set[int] = set()

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        return SimpleNamespace(remote=lambda *args: self.call(method, args))

    def call(self, method: str, args: tuple) -> Call:
        call = Call(self)
        try:
            for handle in handles_in(args):
                if handle.number not in self.sent:
                    self.conn.send(("put", handle.number, self.pool.objects[handle.number]))
                    self.sent.add(handle.number)
            self.conn.send(("call", method, args))
        except (OSError, EOFError):  # its process is gone: the call fails as a dead worker's would
            call.settle(error=ActorDied(WorkerLost("the worker process had ended")))
            return call
        self.pending.append(call)
        return call

    def read(self) -> None:
        """Settle the oldest pending call with the worker's answer, or every pending call if the worker died."""
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            reason = WorkerLost(f"the worker process ended (exit code {self.process.exitcode}) before answering")
            while self.pending:
                self.pending.popleft().settle(error=ActorDied(reason))
            return
        call = self.pending.popleft()
        if kind == "ok":
            call.settle(payload)
        elif kind == "died":
            call.settle(error=ActorDied(payload))
            while self.pending:
                self.pending.popleft().settle(error=ActorDied(payload))
        else:
            call.settle(error=CallFailed(payload))

    def stop(self) -> None:
        try:
            self.conn.send(("stop", None, None))
        except (OSError, EOFError):
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


def handles_in(args: tuple) -> list[Handle]:
    """The handles among a call's arguments, bare or in a list (the Dispatcher wraps a task's data in one)."""
    found = []
    for arg in args:
        for item in (arg if isinstance(arg, list) else [arg]):
            if isinstance(item, Handle):
                found.append(item)
    return found


class LocalActors:
    """The part of Ray's API the Dispatcher uses: remote classes, put, wait, get, kill."""
    exceptions = exceptions

    def __init__(self):
        self.objects: dict[int, object] = {}
        self.numbers = itertools.count()
        self.actors: list[Actor] = []

    def remote(self, cls: type):
        pool = self

        class Remote:
            @staticmethod
            def remote(*args) -> Actor:
                actor = Actor(pool, cls, args)
                pool.actors.append(actor)
                return actor
        return Remote

    def put(self, value) -> Handle:
        number = next(self.numbers)
        self.objects[number] = value
        return Handle(number)

    def wait(self, calls: list[Call], num_returns: int = 1) -> tuple[list[Call], list[Call]]:
        while not any(call.done for call in calls):
            waiting = {call.actor for call in calls if not call.done}
            ready = wait_for_any([actor.conn for actor in waiting])
            for actor in waiting:
                if actor.conn in ready:
                    actor.read()
        done = [call for call in calls if call.done][:num_returns]
        return done, [call for call in calls if call not in done]

    def get(self, call: Call):
        if call.error is not None:
            raise call.error
        return call.value

    def kill(self, actor: Actor) -> None:
        actor.stop()


ORPHAN_POLL_SECONDS = 1.0


def exit_when_orphaned(parent: int, poll: float = ORPHAN_POLL_SECONDS) -> None:
    """End this worker once its driver `parent` is gone. A driver killed by a signal runs no exit handler, and its
    workers would otherwise finish their cells on their own, burning the CPU a rerun needs; the cell a worker leaves
    RUNNING is marked KILLED by the next run, as after a SIGKILL of the driver."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)
    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def serve(conn, cls: type, args: tuple, parent: int | None = None) -> None:
    """A worker process: build the instance, then answer calls in order until told to stop (or until the driver
    `parent` dies)."""
    if parent is not None:
        exit_when_orphaned(parent)
    try:
        instance = cls(*args)
    except BaseException as exc:  # noqa: BLE001 (every failure to start is the driver's to report)
        conn.send(("died", portable(exc)))
        return
    objects: dict[int, object] = {}
    instance.fetch = lambda handle: objects[handle.number]
    while True:
        try:
            kind, name, payload = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind == "stop":
            return
        if kind == "put":
            objects[name] = payload
            continue
        try:
            conn.send(("ok", getattr(instance, name)(*payload)))
        except BaseException as exc:  # noqa: BLE001 (the call's failure is the driver's to record)
            conn.send(("error", portable(DiskFull(str(exc)) if is_disk_full(exc) else exc)))


def portable(exc: BaseException) -> BaseException:
    """The exception itself where it pickles, else a RuntimeError with its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")
