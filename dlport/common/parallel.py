"""Data-parallel runs: what one worker is, and the local launcher that starts and watches
them (docs/design.md, "Data-parallel training"; which rows a worker trains on is
``batching.epoch_shards``). A framework's engine (DDP, tf.distribute, MXNet's kvstore,
jax.distributed) is joined in its own trainer; this module never imports one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dlport.common.errors import DlportError

# How long a worker's collectives and the launcher wait on a silent peer, by default.
DEFAULT_TIMEOUT = 60.0
# Env vars a launched worker reads: its place in the group, and the launcher's pid to watch.
RANK_ENV, WORLD_ENV, COORDINATOR_ENV, PARENT_ENV = (
    "DLPORT_RANK",
    "DLPORT_WORLD",
    "DLPORT_COORDINATOR",
    "DLPORT_LAUNCHER_PID",
)


@dataclass(frozen=True)
class WorkerGroup:
    """This process's place in a data-parallel run of ``world`` workers."""

    rank: int
    world: int
    coordinator: str  # HOST:PORT of rank 0's rendezvous (torch, JAX) or MXNet's scheduler
    timeout: float = DEFAULT_TIMEOUT
    local: bool = False  # every worker on this machine (started by --workers here)

    @property
    def leader(self) -> bool:
        """Rank 0 writes the results and checkpoints."""
        return self.rank == 0

    @classmethod
    def from_env(cls, timeout: float = DEFAULT_TIMEOUT) -> WorkerGroup | None:
        """The group a launcher put this process in (None: not launched as a worker)."""
        if RANK_ENV not in os.environ:
            return None
        return cls(
            int(os.environ[RANK_ENV]),
            int(os.environ[WORLD_ENV]),
            os.environ[COORDINATOR_ENV],
            timeout,
            local=True,
        )


def check_divisible(batch_size: int, world: int) -> None:
    if batch_size % world:
        raise DlportError(
            f"--batch-size {batch_size} does not split into {world} equal shards; "
            f"use a multiple of --workers {world}"
        )


def parse_coordinator(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DlportError(f"--coordinator {text!r} is not HOST:PORT; e.g. 10.0.0.1:29500")
    return text


def free_ports(count: int) -> list[int]:
    """Ports free on localhost now (each bound, then released: the OS does not reuse them at
    once)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def watch_launcher() -> None:
    """In a launched worker: exit when the launcher is gone (killed, say), not linger as an
    orphan blocked in a collective."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="dlport-launcher-watch").start()


@dataclass
class Process:
    label: str  # "rank 1", "MXNet server"
    popen: subprocess.Popen
    log: object  # its stderr file (a worker's last line names its failure)

    def last_line(self) -> str:
        self.log.seek(0)
        lines = [ln.strip() for ln in self.log.read().decode(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1] if lines else ""


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory, or killed)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


@dataclass(frozen=True)
class Service:
    """A process an engine needs beside the workers (MXNet's scheduler and server)."""

    label: str
    env: dict[str, str]
    code: str  # run as ``python -c code``


def launch_local(
    argv: list[str],
    world: int,
    plan: Callable[[list[int]], tuple[list[dict[str, str]], list[Service]]],
) -> int:
    """Run ``world`` workers (``python -m dlport <argv>``) on this machine, plus the engine's
    services; ``plan(ports)`` gives each worker's env and the services (``ports[0]`` is the
    coordinator's, ``ports[1:]`` one per worker). Rank 0 prints to this terminal, the others
    are quiet. When any process fails, the rest are stopped at once (SIGKILL for any still
    running five seconds later) and one line names it and why; returns 0 when every worker
    succeeded."""
    ports = free_ports(world + 1)
    common = {PARENT_ENV: str(os.getpid()), WORLD_ENV: str(world)}
    common[COORDINATOR_ENV] = f"127.0.0.1:{ports[0]}"
    worker_envs, services = plan(ports)
    commands = [
        (f"rank {rank}", env | {RANK_ENV: str(rank)}, ["-m", "dlport", *argv])
        for rank, env in enumerate(worker_envs)
    ] + [(s.label, s.env, ["-c", s.code]) for s in services]
    processes: list[Process] = []
    with contextlib.ExitStack() as logs:
        try:
            for label, env, command in commands:
                log = logs.enter_context(tempfile.TemporaryFile())
                leader = label == "rank 0"
                popen = subprocess.Popen(
                    [sys.executable, *command],
                    env=os.environ | common | env,
                    stdout=None if leader else subprocess.DEVNULL,
                    stderr=None if leader else log,
                    stdin=subprocess.DEVNULL,
                )
                processes.append(Process(label, popen, log))
            return _supervise(processes, world)
        except KeyboardInterrupt:  # they had the same Ctrl-C: rank 0 saves its checkpoint
            _stop(processes, grace=5.0)
            raise
        finally:
            _stop(processes)


def _supervise(processes: list[Process], world: int) -> int:
    workers = processes[:world]
    while True:
        if all(w.popen.poll() == 0 for w in workers):
            return 0
        failed = [p for p in processes if p.popen.poll() not in (None, 0)]
        if failed:
            # The peers of a dead worker fail in turn (a closed connection, or gloo's abort):
            # name the first cause, a process killed by a signal before one that exited on its
            # own, and SIGKILL (only ever from outside: the OOM killer, kill -9) first of all.
            time.sleep(0.5)
            failed = [p for p in processes if p.popen.poll() not in (None, 0)]
            culprit = min(failed, key=lambda p: _blame(p.popen.returncode, processes.index(p)))
            code = culprit.popen.returncode
            if culprit.label == "rank 0" and code > 0:
                return code  # rank 0 said why on this terminal (a DlportError's line)
            why = culprit.last_line()
            raise DlportError(
                f"worker {culprit.label} {describe_exit(code)}"
                + (f": {why}" if why else "")
                + "; the run is stopped (resume from its last --checkpoint with --resume)"
            )
        time.sleep(0.05)


def _blame(code: int, index: int) -> tuple[bool, bool, int]:
    return code > 0, code != -signal.SIGKILL, index


def _stop(processes: list[Process], grace: float = 0.0) -> None:
    """Stop what still runs after ``grace`` seconds: SIGTERM, then SIGKILL five seconds on."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.popen.poll() is None for p in processes):
        time.sleep(0.05)
    running = [p.popen for p in processes if p.popen.poll() is None]
    for popen in running:
        popen.terminate()
    deadline = time.monotonic() + 5.0
    for popen in running:
        try:
            popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
