"""Remove secrets from anything that leaves the process: events, spool files, log lines.

Pipelines name datasets after connection strings and attach SQL, environment variables and
configuration to facets, so a password can ride along without anyone meaning it to. Every
transport and the spool call :func:`scrub` first; log messages go through
:func:`scrub_text`. The rules are deliberately value-shaped (URL userinfo, ``password=...``,
``Bearer ...``) and key-shaped (``password``, ``token``, ``api_key``...), and never touch
column names: a column called ``password`` keeps its lineage.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"

# scheme://user:password@host  ->  scheme://user:***@host
# (greedy up to the last "@" of the authority, so a password containing "@" is covered)
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"]*):(?P<secret>[^\s/'\"]*)@")

# Words that name a secret wherever they are followed by ":" or "=".
_SECRET_WORDS = (
    r"password|passwd|pwd|secret|client_secret|access_token|refresh_token|auth_token|id_token|"
    r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|x-api-key"
)
# Words that only name a secret with "=" (query strings, DSNs): "unexpected token: x" is not one.
_SECRET_PARAMS = r"token|sas|sig|signature|credential|credentials"
_VALUE = r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\")]+)"
_KEY_VALUE = re.compile(rf"(?i)(?P<key>\b(?:{_SECRET_WORDS})\b\s*(?:=|:)\s*){_VALUE}")
_PARAM_VALUE = re.compile(rf"(?i)(?P<key>\b(?:{_SECRET_PARAMS})\b\s*=\s*){_VALUE}")
# SQL: PASSWORD 'literal' / IDENTIFIED BY 'literal'
_SQL_LITERAL = re.compile(r"(?i)(?P<key>\b(?:password|identified\s+by)\s+)(?P<value>'[^']*'|\"[^\"]*\")")
# "Authorization: Bearer abc", "Authorization=abc", and bare "Bearer abc..." in text
_AUTH_HEADER = re.compile(
    r"(?i)(?P<key>\b(?:proxy-)?authorization\b\s*[:=]\s*(?:(?:bearer|basic|token|digest)\s+)?)(?P<value>[^\s,;'\"]+)"
)
_AUTH_SCHEME = re.compile(r"(?P<key>\b(?:[Bb]earer|[Bb]asic)\s+)(?P<value>[A-Za-z0-9._~+/\-]{8,}=*)")

_SECRET_KEY = re.compile(
    r"(?i)^(?:.*(?:password|passwd|secret|token|apikey|accesskey(?:id)?|privatekey|credentials?|"
    r"authorization|cookie)|pwd|auth|sas)$"
)
_ENTRY_NAME_KEYS = ("name", "key")


def _is_secret_key(key: str) -> bool:
    """A mapping key whose scalar value is a secret (``apiKey``, ``PGPASSWORD``, ``x-token``)."""
    return bool(_SECRET_KEY.match(re.sub(r"[^A-Za-z0-9]", "", key)))


def _redact_match(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{quote}{REDACTED}{quote}"


def scrub_url(url: str) -> str:
    """A URL or DSN without the password in its userinfo (``user:***@host``)."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('head')}:{REDACTED}@", url)


def scrub_text(text: str) -> str:
    """Free text (SQL, error messages, log lines) with every recognisable secret redacted."""
    if not text:
        return text
    text = scrub_url(text)
    text = _AUTH_HEADER.sub(_redact_match, text)
    text = _AUTH_SCHEME.sub(_redact_match, text)
    text = _KEY_VALUE.sub(_redact_match, text)
    text = _PARAM_VALUE.sub(_redact_match, text)
    return _SQL_LITERAL.sub(_redact_match, text)


def _scrub_mapping(obj: dict[Any, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    # {"name": "PGPASSWORD", "value": "..."} (environment variables, execution parameters)
    entry_secret = any(
        isinstance(obj.get(k), str) and _is_secret_key(obj[k]) for k in _ENTRY_NAME_KEYS
    ) and "value" in obj
    for key, value in obj.items():
        if isinstance(value, (dict, list, tuple)):
            out[key] = scrub(value)
        elif value is not None and isinstance(key, str) and _is_secret_key(key):
            out[key] = REDACTED
        elif entry_secret and key == "value" and value is not None:
            out[key] = REDACTED
        else:
            out[key] = scrub(value)
    return out


def scrub(obj: Any) -> Any:
    """A copy of ``obj`` (JSON-like) with secrets redacted; the input is left untouched.

    Scalars under secret-looking keys become ``***``; strings anywhere lose URL passwords,
    ``key=value`` secrets, SQL password literals and bearer tokens. Nested containers are
    walked, never replaced, so facets keyed by column names stay intact.
    """
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, dict):
        return _scrub_mapping(obj)
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    return obj
