"""Compound action codes (Z/D, X/Z, X/D, X/Z/D) resolved by the attribute's Type in the instance's IOD.

The Types come from ``data/iod_types.json``, generated from highdicom's offline PS3.3 maps (MIT) for the attributes
that carry a compound code. The choice is the least-removing one that keeps the IOD valid: Type 1 or 1C -> D (or Z
where D is not offered), Type 2 or 2C -> Z (or D where Z is not offered), Type 3 or not in the IOD -> X.
"""

from __future__ import annotations

from functools import cache

from airflow_hi_stow.deid.profile import load_data

_STRENGTH = {"1": 3, "1C": 3, "2": 2, "2C": 2, "3": 1}


class IodTypes:
    """The strongest Type of an attribute at a sequence path, over the modules of the IOD of a SOP Class."""

    def __init__(self) -> None:
        data = load_data("iod_types.json")
        self._sop_classes: dict[str, str] = data["sop_classes"]
        self._iods: dict[str, list[str]] = data["iods"]
        self._modules: dict[str, dict[str, str]] = data["modules"]
        self._memo: dict[tuple[str, str], int] = {}

    def strength(self, sop_class_uid: str, path: str) -> int:
        """3 for Type 1/1C, 2 for Type 2/2C, 1 for Type 3, 0 when the IOD does not hold the attribute there.

        ``path`` is the keywords of the enclosing sequences and the attribute's own, joined by ``/``.
        """
        key = (sop_class_uid, path)
        found = self._memo.get(key)
        if found is None:
            iod = self._sop_classes.get(sop_class_uid)
            modules = self._iods.get(iod, []) if iod else []
            found = max((_STRENGTH.get(self._modules[m].get(path, ""), 0) for m in modules), default=0)
            self._memo[key] = found
        return found


def resolve(code: str, strength: int) -> str:
    """One of X, Z, D for a compound code and the attribute's Type strength (see ``IodTypes.strength``)."""
    choices = code.split("/")
    wanted: tuple[str, ...]
    if strength >= 3:
        wanted = ("D", "Z")
    elif strength == 2:
        wanted = ("Z", "D")
    else:
        wanted = ("X", "Z", "D")
    return next(c for c in wanted if c in choices)


@cache
def iod_types() -> IodTypes:
    return IodTypes()
