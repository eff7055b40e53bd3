"""Several worker processes on one port: ``roam serve --workers N``.

The parent binds the listening socket once and forks the workers; each builds its own
app (its own Redis pool, audit writer, health prober) and serves on the shared socket,
the kernel handing each new connection to one of them, as gunicorn's pre-fork model and
uvicorn's ``--workers`` do. The parent only watches: a worker that dies is started again
(more than ``MAX_DEATHS`` in ``DEATH_WINDOW`` seconds and the parent gives up and stops),
and SIGTERM or SIGINT stops them all the way uvicorn stops one — the requests in flight
finish — then the parent exits. SIGKILL after ``STOP_TIMEOUT`` seconds for a worker that
does not stop.

Workers share nothing in memory, so what one process would keep to itself must be shared
(:func:`process_problems`): the store (Redis), the signing keys (a key directory), the
gateway's secret, and prometheus-client's multiprocess directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from gateway.config import Config
from gateway.metrics.recorder import MULTIPROC_ENV

__all__ = ["DEATH_WINDOW", "MAX_DEATHS", "STOP_TIMEOUT", "Supervisor", "bind_socket",
           "clear_metric_files", "process_problems"]

log = logging.getLogger("roam.workers")

MAX_DEATHS = 5
DEATH_WINDOW = 30.0
STOP_TIMEOUT = 30.0
_POLL = 0.1


def process_problems(config: Config, workers: int, env: Mapping[str, str]) -> list[str]:
    """What keeps ``workers`` processes (or one on a shared store) from agreeing, one line
    each: nothing any one of them keeps in memory may be the others' business."""
    settings, where, gateway = config.settings, config.source, config.settings.gateway
    problems: list[str] = []
    shared = settings.store.backend == "redis"
    if not gateway.key_dir and (shared or workers > 1):
        problems.append(
            f"{where}: gateway.key_dir: empty (ephemeral keys): every gateway process on a "
            "shared store, and every worker, must sign with the same keys; give them a key "
            "directory (`roam keys generate`)")
    if workers <= 1:
        return problems
    if not shared:
        problems.append(f"{where}: store.backend: memory is one process's own; --workers "
                        f"{workers} needs redis")
    if not env.get(gateway.secret_env) and not gateway.secret_file:
        problems.append(f"{where}: gateway: no secret (${gateway.secret_env} or "
                        f"gateway.secret_file): --workers {workers} needs one for all")
    if settings.metrics.enabled and not env.get(MULTIPROC_ENV):
        problems.append(f"environment: {MULTIPROC_ENV}: unset: with --workers {workers} "
                        "the workers keep their metrics in files there (an empty directory "
                        "of their own), or set [metrics] enabled = false")
    return problems


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (inherited across ``fork``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Forks ``count`` workers running ``work(sock)`` and keeps them running."""

    def __init__(self, count: int, sock: socket.socket,
                 work: Callable[[socket.socket], None], *,
                 on_death: Callable[[int], None] | None = None) -> None:
        self.count = count
        self.sock = sock
        self.work = work
        self.on_death = on_death or (lambda pid: None)  # a dead worker's leftovers
        self.workers: dict[int, int] = {}  # pid -> slot
        self.deaths: list[float] = []
        self.stopping: float | None = None  # when the stop began
        self.failed = False

    def run(self) -> int:
        """Until stopped: 0 after a stop asked by a signal, 1 if workers kept dying."""
        previous = {sig: signal.signal(sig, self._stop)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.count):
                self._spawn(slot)
            log.info("workers started", extra={"count": self.count,
                                               "pids": sorted(self.workers)})
            while self.workers:
                self._reap()
                if self.stopping is not None and \
                        time.monotonic() - self.stopping > STOP_TIMEOUT:
                    self._signal_all(signal.SIGKILL)
                time.sleep(_POLL)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()
        return 1 if self.failed else 0

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own
                self.work(self.sock)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        self.workers[pid] = slot

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            slot = self.workers.pop(pid, None)
            if slot is None:
                continue
            self.on_death(pid)
            if self.stopping is not None:
                continue
            log.error("worker died; starting another",
                      extra={"pid": pid, "status": _status(status), "slot": slot})
            now = time.monotonic()
            self.deaths = [t for t in self.deaths if now - t < DEATH_WINDOW] + [now]
            if len(self.deaths) > MAX_DEATHS:
                log.error("workers keep dying; stopping",
                          extra={"deaths": len(self.deaths), "seconds": DEATH_WINDOW})
                self.failed = True
                self._begin_stop()
                continue
            self._spawn(slot)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        log.info("stopping workers", extra={"signal": signal.Signals(signum).name})
        self._begin_stop()

    def _begin_stop(self) -> None:
        if self.stopping is None:
            self.stopping = time.monotonic()
            self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def clear_metric_files(path: str | Path) -> None:
    """The multiprocess directory's files of earlier runs (prometheus-client's ``*.db``):
    their counts would be summed into this run's."""
    for file in Path(path).glob("*.db"):
        file.unlink(missing_ok=True)
