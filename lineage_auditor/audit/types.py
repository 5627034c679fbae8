"""Is a column type change a widening (every old value still fits) or a narrowing?

Types are compared by family and size as SQL writes them: ``int < bigint``,
``decimal(10,2) < decimal(14,2)``, ``varchar(20) < varchar(50) < text``, ``float < double``,
``int -> double`` widens, ``double -> int`` or ``timestamp -> date`` narrows, and anything
to text widens. Unknown pairs are a plain "change".
"""

from __future__ import annotations

import re

WIDENING, NARROWING, CHANGE = "widening", "narrowing", "change"

_INT_RANK = {
    "tinyint": 1, "int1": 1, "smallint": 2, "int2": 2, "short": 2, "integer": 3, "int": 3, "int4": 3,
    "mediumint": 3, "bigint": 4, "int8": 4, "long": 4, "int64": 4, "hugeint": 5, "int128": 5,
}
_FLOAT_RANK = {"real": 1, "float4": 1, "float": 2, "double": 2, "float8": 2, "double precision": 2, "float64": 2}
_TEXT = {"text", "string", "varchar", "char", "character varying", "character", "nvarchar", "bpchar"}
_TIME_RANK = {"date": 1, "timestamp": 2, "datetime": 2, "timestamp without time zone": 2,
              "timestamptz": 3, "timestamp with time zone": 3}
_ARGS = re.compile(r"^\s*([a-z_ ]+?)\s*(?:\(\s*([\d\s,]*)\s*\))?\s*$")


def _parse(type_text: str) -> tuple[str, tuple[int, ...]]:
    match = _ARGS.match(type_text.lower().replace("unsigned", "").strip())
    if not match:
        return type_text.lower().strip(), ()
    args = tuple(int(a) for a in (match.group(2) or "").replace(" ", "").split(",") if a)
    return match.group(1).strip(), args


def _family(base: str) -> str:
    if base in _INT_RANK:
        return "int"
    if base in _FLOAT_RANK:
        return "float"
    if base in ("decimal", "numeric", "number"):
        return "decimal"
    if base in _TEXT:
        return "text"
    if base in _TIME_RANK:
        return "time"
    return base


def classify_type_change(old: str, new: str) -> str:
    """``widening``, ``narrowing`` or ``change`` for a column going from ``old`` to ``new``."""
    (ob, oa), (nb, na) = _parse(old), _parse(new)
    of, nf = _family(ob), _family(nb)
    if of == nf:
        return _same_family(of, ob, oa, nb, na)
    if nf == "text":
        return WIDENING
    if of == "text":
        return NARROWING
    order = {"int": 1, "decimal": 2, "float": 3}
    if of in order and nf in order:
        # int -> decimal/float widens; float/decimal -> int narrows (fractions lost)
        return WIDENING if order[nf] > order[of] else NARROWING
    return CHANGE


def _same_family(family: str, ob: str, oa: tuple[int, ...], nb: str, na: tuple[int, ...]) -> str:
    if family == "int":
        return _rank(_INT_RANK[ob], _INT_RANK[nb])
    if family == "float":
        return _rank(_FLOAT_RANK[ob], _FLOAT_RANK[nb])
    if family == "time":
        return _rank(_TIME_RANK[ob], _TIME_RANK[nb])
    if family == "decimal":
        op, os_ = (oa + (38, 0))[:2] if oa else (38, 0)
        np_, ns = (na + (38, 0))[:2] if na else (38, 0)
        if len(oa) == 1:
            os_ = 0
        if len(na) == 1:
            ns = 0
        if (np_ - ns) >= (op - os_) and ns >= os_:
            return WIDENING if (np_, ns) != (op, os_) else CHANGE
        return NARROWING
    if family == "text":
        old_len = oa[0] if oa and ob not in ("text", "string") else 1 << 30
        new_len = na[0] if na and nb not in ("text", "string") else 1 << 30
        return _rank(old_len, new_len)
    return CHANGE


def _rank(old: int, new: int) -> str:
    if new > old:
        return WIDENING
    if new < old:
        return NARROWING
    return CHANGE
