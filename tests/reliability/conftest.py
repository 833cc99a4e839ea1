"""Hypothesis for the fuzz tests: derandomized (the same examples on every run, so CI is reproducible), no example
database written, and a deadline per example, so that no input may hang a parser. ``HI_STOW_FUZZ_FACTOR`` (``make
fuzz``: 20) multiplies every test's number of examples for a longer search, with random examples."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

FUZZ_FACTOR = int(os.environ.get("HI_STOW_FUZZ_FACTOR", "1"))

settings.register_profile(
    "hi-stow",
    derandomize=FUZZ_FACTOR == 1,
    database=None,
    deadline=timedelta(seconds=2),
    print_blob=True,
)
settings.load_profile("hi-stow")


def examples(count: int, *, scratch: bool = False) -> settings:
    """The settings of a fuzz test: ``count`` examples (times ``HI_STOW_FUZZ_FACTOR``); ``scratch``: the test
    takes a function-scoped fixture (``tmp_path``) it shares between examples, as scratch space."""
    suppressed = [HealthCheck.function_scoped_fixture] if scratch else []
    return settings(max_examples=count * FUZZ_FACTOR, suppress_health_check=suppressed)
