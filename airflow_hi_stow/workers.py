"""Worker processes for the CPU-bound steps (de-identification, validation), safe inside an Airflow task.

They are started with ``spawn`` (never ``fork``: a task process has threads, and a lock one of them holds at the
fork would stay held in the child). A spawned child re-runs its parent's main script unless that script is a
``__main__`` module; an Airflow task's main script is the ``airflow`` command, whose import in the child configures
Airflow's metadata database, which Airflow 3 withholds from tasks (``airflow-db-not-allowed:///``), so every child
died at start. :func:`worker_pool` marks the parent's ``__main__`` as a ``__main__`` module while its workers run,
which is what ``python -m`` gives, so children skip it: they only need this package's importable functions.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from multiprocessing import get_context
from typing import Any

_SPAWN = get_context("spawn")
log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def allowed_processes(processes: int) -> int:
    """``processes``, or 1 where this process may not start children: a daemonic process, as the tasks of a Celery
    prefork worker are ("daemonic processes are not allowed to have children"). There, more cores come from more
    mapped tasks (more shards), which is Airflow's way to scale out anyway."""
    if processes > 1 and multiprocessing.current_process().daemon:
        log.warning(
            "worker processes cannot be started from this daemonic process (a Celery prefork worker's task): "
            "working in one process; map the task over more shards to use more cores"
        )
        return 1
    return processes


@contextmanager
def worker_pool(
    workers: int, initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[ProcessPoolExecutor]:
    """``workers`` spawned processes that do not re-run the parent's main script."""
    main = sys.modules["__main__"]
    marked = getattr(main, "__spec__", None) is None
    if marked:
        main.__spec__ = ModuleSpec("__main__", None)
    try:
        with ProcessPoolExecutor(workers, mp_context=_SPAWN, initializer=initializer, initargs=initargs) as pool:
            yield pool
    finally:
        if marked:
            main.__spec__ = None
