"""Transformation values and how they combine.

A transformation is a small tuple ``(type, subtype, masking)`` while the engine works:
tuples hash fast and the engine creates millions of them on a large corpus. They become
``model.Transformation`` objects only at the edge.
"""

from __future__ import annotations

from lineage_auditor.model import (
    AGGREGATION,
    CONDITIONAL,
    DIRECT,
    DIRECT_RANK,
    FILTER,
    GROUP_BY,
    IDENTITY,
    INDIRECT,
    JOIN,
    SORT,
    TRANSFORMATION,
    WINDOW,
    Transformation,
)

T = tuple[str, str, bool]

IDENT: T = (DIRECT, IDENTITY, False)
TRANSFORM: T = (DIRECT, TRANSFORMATION, False)
AGGREGATE: T = (DIRECT, AGGREGATION, False)
MASKED: T = (DIRECT, TRANSFORMATION, True)
IND_JOIN: T = (INDIRECT, JOIN, False)
IND_FILTER: T = (INDIRECT, FILTER, False)
IND_GROUP: T = (INDIRECT, GROUP_BY, False)
IND_SORT: T = (INDIRECT, SORT, False)
IND_WINDOW: T = (INDIRECT, WINDOW, False)
IND_COND: T = (INDIRECT, CONDITIONAL, False)

# Functions that hide the value they are given: a column reaching an output only through
# one of these is masked (OpenLineage ``masking: true``). Names are sqlglot expression keys
# or function names as written, lower case.
MASKING_FUNCTIONS = frozenset(
    {
        "md5", "md5digest", "md5_binary", "md5_number_lower64", "md5_number_upper64",
        "sha", "sha1", "sha2", "sha256", "sha512", "sha224", "sha384", "sha1_binary",
        "sha2_binary", "sha256_binary", "standardhash", "hash", "hash_agg", "farm_fingerprint",
        "farmfingerprint", "xxhash64", "xxhash", "murmur3", "murmurhash3", "crc32",
        "mask", "mask_hash", "mask_first_n", "mask_last_n", "mask_show_first_n",
        "mask_show_last_n", "redact", "anonymize", "pseudonymize", "tokenize", "encrypt",
        "aes_encrypt", "pgp_sym_encrypt", "digest", "hmac",
    }
)


def compose(outer: T, inner: T) -> T:
    """The transformation of ``inner`` seen through ``outer``.

    DIRECT through DIRECT keeps the stronger subtype (an identity of an aggregate is an
    aggregate) and stays masked once masked; anything through INDIRECT is that INDIRECT;
    an INDIRECT dependency stays INDIRECT when a DIRECT step carries it further.
    """
    if outer[0] == INDIRECT:
        return outer
    if inner[0] == INDIRECT:
        return inner
    if outer is IDENT:
        return inner
    sub = outer[1] if DIRECT_RANK[outer[1]] >= DIRECT_RANK[inner[1]] else inner[1]
    masking = outer[2] or inner[2]
    if sub == inner[1] and masking == inner[2]:
        return inner
    return (DIRECT, sub, masking)


_MODELS: dict[T, Transformation] = {}


def to_model(t: T) -> Transformation:
    """Turn the engine's tuple into the model's transformation (frozen: one object per value)."""
    model = _MODELS.get(t)
    if model is None:
        model = _MODELS[t] = Transformation(type=t[0], subtype=t[1], masking=t[2])
    return model
