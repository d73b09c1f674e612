"""Multi-process runs: ``accelerate launch --multi_gpu --num_processes N -m learnguide.apps.cli …`` (or
``torchrun --nproc_per_node N``; both also on CPUs, with gloo) shards the work.

Every command works in units that do not depend on how many processes run them — a bank's shards (each
drawn from its own seed), a sampling run's batches (per-sample seeds) — and process r of N takes units
r, r + N, r + 2N, … . Results are merged in unit order, so N processes write exactly, bit for bit, what one
process writes. Without a launcher (no ``WORLD_SIZE``) everything runs in this process.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Processes:
    """This process's place in a run: ``rank`` r of ``world`` N processes, and the ``device`` it computes on
    (its GPU under a launcher, else the first GPU when there is one, else the CPU)."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    def __str__(self) -> str:
        """``"1 process"`` or ``"N processes"``: how commands report the size of their run."""
        return f"{self.world} process{'es' if self.world > 1 else ''}"

    @property
    def is_main(self) -> bool:
        """Whether this is process 0 (the one that writes merged outputs and prints)."""
        return self.rank == 0

    def mine(self, units: list[int]) -> list[int]:
        """The units this process works on: every N-th, starting at its rank."""
        return units[self.rank :: self.world]

    def barrier(self) -> None:
        """Wait until every process has reached this point."""
        if self.world > 1:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (any picklable object of this run's own making), in rank order."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def map_units(
        self,
        work: Callable[[int], Any],
        units: int,
        desc: str = "",
        progress: bool = False,
        everywhere: bool = False,
    ) -> list[Any] | None:
        """``work(j)`` for units j = 0 … units − 1, split over the processes (r, r + N, …); the results in
        unit order on process 0, None on the others (they are sent to process 0 only), or on every process
        when ``everywhere``."""
        mine = {
            j: work(j)
            for j in tqdm(self.mine(list(range(units))), desc=desc, disable=not progress or not self.is_main)
        }
        if self.world == 1:
            return [mine[j] for j in range(units)]
        if everywhere:
            parts: list[Any] | None = self.gather(mine)
        else:
            parts = [None] * self.world if self.is_main else None
            dist.gather_object(mine, parts, dst=0)
            if not self.is_main:
                return None
        done = {j: result for part in parts for j, result in part.items()}
        return [done[j] for j in range(units)]


def processes() -> Processes:
    """The processes of this run, starting the process group (gloo on CPU, NCCL on GPUs, through
    Accelerate) when a launcher set ``WORLD_SIZE`` > 1: ``accelerate launch --multi_gpu --num_processes N``
    or ``torchrun --nproc_per_node N`` (on a machine without GPUs too; ``accelerate launch --cpu`` starts
    one process only)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Processes(device="cuda" if torch.cuda.is_available() else "cpu")
    from accelerate import PartialState

    # Imported before the group starts: this module's collectives take ``group=group.WORLD`` as a default
    # argument, evaluated at import. Imported after (torch._dynamo imports it; building a module on the meta
    # device imports torch._dynamo), they hold the world group past destroy_process_group, and its live
    # gloo threads abort the process at exit (SIGABRT, "terminate called without an active exception").
    importlib.import_module("torch.distributed.nn.functional")

    state = PartialState(cpu=not torch.cuda.is_available())
    atexit.unregister(_end_process_group)  # registered once however often this is called
    atexit.register(_end_process_group)
    return Processes(state.process_index, state.num_processes, str(state.device))


def _end_process_group() -> None:
    """Destroy the process group while the interpreter is still whole: left to the interpreter's teardown,
    gloo's worker threads can abort the process (SIGABRT, "terminate called without an active exception")
    after its work is done."""
    if dist.is_initialized():
        dist.destroy_process_group()


LOCK_FILE = ".learnguide.lock"


class OutputLock:
    """One job per output folder: ``with OutputLock(folder, "bank", procs):`` holds
    ``folder/.learnguide.lock`` (pid, host, command) for the job's duration. A second job pointed at the
    folder is refused with a message naming the first; the lock of a job that died (its pid is gone on this
    host) is taken over. In a multi-process run process 0 takes the lock for all.
    """

    def __init__(self, folder: str | os.PathLike, command: str, procs: Processes | None = None) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.command, self.procs = command, procs or Processes()
        self.held = False

    def __enter__(self) -> OutputLock:
        refusal = self._acquire() if self.procs.is_main else None
        refusal = self.procs.gather(refusal)[0]
        if refusal is not None:
            raise ValueError(refusal)
        return self

    def __exit__(self, *exc: object) -> None:
        self.procs.barrier()
        if self.held:
            self.path.unlink(missing_ok=True)

    def _acquire(self) -> str | None:
        """Take the lock; the refusal message when another live job holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.ctime(),
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # a plain file's mode
            except FileExistsError:
                try:
                    other = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    other = {}
                if other.get("host") == me["host"] and not _alive(int(other.get("pid", -1))):
                    self.path.unlink(missing_ok=True)  # that job died: take its folder over
                    continue
                who = ", ".join(f"{k} {other.get(k, '?')}" for k in ("command", "pid", "host", "since"))
                return (
                    f"{self.path.parent} is in use by another learnguide job ({who}); wait for it, use "
                    f"another --out, or delete {self.path} if that job is gone"
                )
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
            self.held = True
            return None
        return f"could not take {self.path}"


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
