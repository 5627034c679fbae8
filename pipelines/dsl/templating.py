"""Jinja in a sandbox: the only code an analyst's spec can run at render time.

An :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with only the names we give (``ds``,
``data_interval_start``/``end``, ``run_id``, ``params``, ``env`` with allow-listed variables,
``target``), a short list of filters, undefined names as errors, and a loader that only sees
the spec's folder. A template error names the file, line and the expression.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, TemplateNotFound, nodes, StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from lineage_auditor.errors import ConfigError

ENV_ALLOWLIST_VAR = "LINEAGE_AUDIT_TEMPLATE_ENV"  # comma-separated names specs may read via env.NAME
FILTERS = ("lower", "upper", "trim", "replace", "default", "join", "int", "float", "string", "length",
           "first", "last", "round", "abs", "sort", "unique", "list", "tojson")


@dataclass(frozen=True)
class RunContext:
    """What a template may see about the run it renders for."""

    day: date
    run_id: str = "planned"
    params: Mapping[str, Any] = field(default_factory=dict)
    target: str = ""
    env_names: tuple[str, ...] = ()

    def variables(self) -> dict[str, Any]:
        start = datetime.combine(self.day, time(0), tzinfo=timezone.utc)
        allowed = set(self.env_names) | _allowlisted_env()
        return {
            "ds": self.day.isoformat(),
            "ds_nodash": self.day.strftime("%Y%m%d"),
            "data_interval_start": start.isoformat(),
            "data_interval_end": (start + timedelta(days=1)).isoformat(),
            "run_id": self.run_id,
            "params": dict(self.params),
            "env": {name: os.environ[name] for name in sorted(allowed) if name in os.environ},
            "target": self.target,
        }


def _allowlisted_env() -> set[str]:
    return {n.strip() for n in os.environ.get(ENV_ALLOWLIST_VAR, "").split(",") if n.strip()}


@lru_cache(maxsize=64)
def environment(folder: Path) -> ImmutableSandboxedEnvironment:
    """A sandbox whose includes resolve inside ``folder`` only (one per folder: it holds no run state)."""
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(folder), followlinks=False),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters = {name: env.filters[name] for name in FILTERS if name in env.filters}
    env.globals = {}
    env.tests = {name: env.tests[name] for name in ("defined", "undefined", "none", "number", "string") if name in env.tests}
    return env


def render(text: str, context: RunContext, *, folder: Path, file: str, line: int = 0, column: int = 0) -> str:
    """``text`` rendered for one run; a template problem is a ConfigError at its place.

    ``line``/``column`` are where ``text`` starts in ``file`` (an inline query in a spec).
    """
    if "{" not in text:
        return text  # most SQL has no template: skip the compile
    env = environment(folder)
    try:
        tree = env.parse(text)
        _check_env_names(tree, context)
        return env.from_string(tree).render(context.variables())
    except TemplateSyntaxError as exc:
        raise ConfigError(f"template: {exc.message}", file=file, line=_line(line, exc.lineno), column=column) from None
    except TemplateNotFound as exc:
        raise ConfigError(f"template: cannot include {exc.name!r}: only files inside the spec's folder can be included",
                          file=file, line=line, column=column) from None
    except SecurityError as exc:
        raise ConfigError(f"template: not allowed in a spec: {exc}", file=file, line=_line(line, _lineno(exc)), column=column) from None
    except TemplateError as exc:
        message = str(exc.message or exc)
        if "is undefined" in message:
            message = f"{message} (templates see: ds, ds_nodash, data_interval_start, data_interval_end, run_id, params, env, target)"
        raise ConfigError(f"template: {message}", file=file, line=_line(line, _lineno(exc)), column=column) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as exc:
        raise ConfigError(f"template: {type(exc).__name__}: {exc}", file=file, line=line, column=column) from None


def _check_env_names(tree: nodes.Template, context: RunContext) -> None:
    """``env.NAME`` of a variable that is not allow-listed is an error, not an empty value."""
    allowed = set(context.env_names) | _allowlisted_env()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "env" and node.attr not in allowed:
            raise TemplateError(f"env.{node.attr} is not allow-listed for templates (list it in {ENV_ALLOWLIST_VAR})")


def _lineno(exc: BaseException) -> int:
    return int(getattr(exc, "lineno", 0) or 0)


def _line(start: int, offset: int) -> int:
    """A template's line number (1-based inside the text) as a line of the file."""
    if not start:
        return offset
    return start + max(offset - 1, 0)
