"""Every check, in the order reports list them. To add one, see docs/validation.md ("Adding a check")."""

from __future__ import annotations

from airflow_hi_stow.validate import crossfile, dciodvfy
from airflow_hi_stow.validate.check import Check, Scope
from airflow_hi_stow.validate.checks import container, deid, healthimaging, identity, pixels

CHECKS: tuple[Check, ...] = (
    *container.CHECKS,
    *identity.CHECKS,
    crossfile.DUPLICATES,
    *healthimaging.CHECKS,
    *pixels.CHECKS,
    *deid.CHECKS,
    crossfile.STUDY,
    crossfile.SERIES,
    *dciodvfy.CHECKS,
)
_BY_NAME = {check.name: check for check in CHECKS}
FILE_CHECKS = tuple(check for check in CHECKS if check.scope == Scope.FILE and check.function is not None)


def check_named(name: str) -> Check:
    """The check called ``name``; raises ValueError listing the names when there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        groups = sorted({check.group for check in CHECKS})
        raise ValueError(
            f"no check named {name!r}; the checks are {', '.join(_BY_NAME)} (and the groups {', '.join(groups)})"
        ) from None
