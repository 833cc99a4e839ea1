"""Worker processes for the CPU-bound steps (de-identification, validation), safe inside an Airflow task.

They are started with ``spawn`` (never ``fork``: a task process has threads, and a lock one of them holds at the
fork would stay held in the child). A spawned child re-runs its parent's main script unless that script is a
``__main__`` module; an Airflow task's main script is the ``airflow`` command, whose import in the child configures
Airflow's metadata database, which Airflow 3 withholds from tasks (``airflow-db-not-allowed:///``), so every child
died at start. :func:`worker_pool` marks the parent's ``__main__`` as a ``__main__`` module while its workers run,
which is what ``python -m`` gives, so children skip it: they only need this package's importable functions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from multiprocessing import get_context
from typing import Any

_SPAWN = get_context("spawn")


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
