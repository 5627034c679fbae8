"""Specs to Airflow 3 DAG files: one static, readable, deterministic file per spec.

Not a runtime YAML loader: the DAG file is plain Python a platform team reviews in a pull
request (recompiling an unchanged spec gives the same bytes), and a broken spec fails here,
at compile time, with every problem at its file:line:col, instead of a DAG that silently
disappears. Importing this module never imports Airflow.

Names match the local runner's so both report the same jobs: ``dag_id`` is the spec's id and
``task_id`` the step's id, so the provider's task jobs ``dag_id.task_id`` are the runner's
``<spec id>.<step id>`` (in the namespace the provider is configured with, see the README).
"""

from __future__ import annotations

import hashlib
import json
import keyword
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from lineage_auditor.errors import ConfigError
from pipelines.dsl.listing import schedule_of
from pipelines.dsl.loader import LoadedSpec, SpecErrors, SpecProblem
from pipelines.dsl.model import Param, ParamType, Pipeline, Resources, Retries, Step
from pipelines.dsl.plan import StepPlan, plan_spec

TEMPLATE = "dag.py.j2"
BACKOFF_MULTIPLIER = 2.0  # the spec's backoff doubles per attempt; Airflow 3 takes the factor as a float
#: Names the DAG file itself binds: a step with one of these ids gets ``_task`` on its variable.
_TAKEN = {"annotations", "dag", "timedelta", "deadline_missed", "task_failed"}
_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)  # schedule_of also gives a next run: compiled files never show it


@dataclass(frozen=True)
class CompiledDag:
    """One DAG file written (or found unchanged) for one spec."""

    spec: Path
    path: Path
    dag_id: str
    tasks: int
    changed: bool


def compile_specs(specs: Sequence[LoadedSpec], out_dir: Path, *, write: bool = True) -> list[CompiledDag]:
    """Write ``<dag_id>.py`` into ``out_dir`` for every spec; an unchanged file is not rewritten.

    Every spec is rendered before anything is written: one broken spec writes nothing, and
    :class:`SpecErrors` lists the problems of all of them. Two specs with one id would be one
    DAG in Airflow (the second silently wins): refused. ``write=False`` only checks.
    """
    seen: dict[str, Path] = {}
    for loaded in specs:
        other = seen.setdefault(loaded.pipeline.id, loaded.path)
        if other != loaded.path:
            raise ConfigError(f"pipeline id {loaded.pipeline.id!r} is used by {other} too: DAG ids must be unique",
                              file=str(loaded.path))
    rendered: list[tuple[LoadedSpec, str]] = []
    problems: list[SpecProblem] = []
    for loaded in specs:
        try:
            rendered.append((loaded, render_dag(loaded, out_dir)))
        except SpecErrors as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecErrors(problems)
    if not write:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for loaded, text in rendered:
        path = out_dir / f"{loaded.pipeline.id}.py"
        changed = not path.is_file() or path.read_text(encoding="utf-8") != text
        if changed:
            path.write_text(text, encoding="utf-8")
        written.append(CompiledDag(loaded.path, path, loaded.pipeline.id, len(loaded.pipeline.steps), changed))
    return written


def render_dag(loaded: LoadedSpec, out_dir: Path) -> str:
    """The DAG file of one spec, as text (the spec is planned first: a broken spec raises SpecErrors)."""
    spec = loaded.pipeline
    plan = plan_spec(loaded, date(2000, 1, 1))  # checks references; the structure does not depend on the day
    steps = {s.id: s for s in spec.steps}
    cron, _next = schedule_of(loaded, _EPOCH)
    context = {
        "spec": spec,
        "docstring": _docstring(spec),
        "spec_path": _relative(loaded.path, out_dir),
        "digest": _digest(loaded),
        "schedule": None if cron == "none" else cron,
        "owner": ",".join(o.name for o in spec.owners) or f"team:{spec.team}",
        "tags": sorted({f"team:{spec.team}", *spec.tags}),
        "params": [_param(name, p) for name, p in sorted(spec.params.items())],
        "default_args": _default_args(spec),
        "tasks": [_task(steps[s.id]) for s in plan.steps],
        "edges": _edges(plan.steps),
    }
    return _environment().get_template(TEMPLATE).render(context)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent)), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["py"] = _literal
    env.filters["td"] = _timedelta
    return env


def _literal(value: Any) -> str:
    """A Python literal for ``value`` (strings in double quotes, as formatters write them)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no literal for {type(value).__name__}")


def _timedelta(value: timedelta) -> str:
    """``timedelta(minutes=5)``: the largest unit that divides the duration."""
    seconds = value.total_seconds()
    if seconds != int(seconds):
        return f"timedelta(seconds={seconds!r})"
    unit, size = next((u, n) for u, n in _UNITS if int(seconds) % n == 0)
    return f"timedelta({unit}={int(seconds) // size})"


def _relative(spec: Path, out_dir: Path) -> str:
    """The spec's path from the DAG folder, with forward slashes (the DAG file finds it beside itself)."""
    return Path(os.path.relpath(spec.resolve(), out_dir.resolve())).as_posix()


def _digest(loaded: LoadedSpec) -> str:
    return hashlib.sha256(loaded.path.read_bytes()).hexdigest()


def _param(name: str, param: Param) -> dict[str, Any]:
    kinds = {ParamType.STRING: "string", ParamType.INTEGER: "integer", ParamType.NUMBER: "number",
             ParamType.BOOLEAN: "boolean", ParamType.DATE: "string"}
    kind: Any = kinds[param.type]
    if param.default is None:
        kind = ["null", kind]
    args: dict[str, Any] = {"type": kind}
    if param.type is ParamType.DATE:
        args["format"] = "date"
    if param.description:
        args["description"] = param.description
    return {"name": name, "default": param.default, "args": args}


def _retries(retries: Retries) -> dict[str, Any]:
    return {"retries": retries.count, "retry_delay": retries.backoff, "max_retry_delay": retries.max_delay,
            "retry_exponential_backoff": BACKOFF_MULTIPLIER}


def _resources(resources: Resources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if resources.pool:
        out["pool"] = resources.pool
        if resources.pool_slots != 1:
            out["pool_slots"] = resources.pool_slots
    if resources.queue:
        out["queue"] = resources.queue
    return out


def _default_args(spec: Pipeline) -> dict[str, Any]:
    args: dict[str, Any] = {"owner": ",".join(o.name for o in spec.owners) or f"team:{spec.team}"}
    args.update(_retries(spec.retries))
    if spec.timeout is not None:
        args["execution_timeout"] = spec.timeout
    args.update(_resources(spec.resources))
    return args


def _task(step: Step) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if step.timeout is not None:
        args["execution_timeout"] = step.timeout
    if step.retries is not None:
        args.update(_retries(step.retries))
    if step.resources is not None:
        args.update(_resources(step.resources))  # field by field over the pipeline's (default_args)
    return {"var": _variable(step.id), "id": step.id, "doc": f"{step.kind.value} step {step.id}", "args": args}


def _variable(step_id: str) -> str:
    """The task's variable in the DAG file: the step id, unless Python or the file already uses it."""
    return f"{step_id}_task" if step_id in _TAKEN or keyword.iskeyword(step_id) else step_id


def _edges(steps: Sequence[StepPlan]) -> list[str]:
    """``upstream >> step`` lines (task variables), in plan order, upstreams in plan order."""
    order = {s.id: i for i, s in enumerate(steps)}
    lines = []
    for step in steps:
        upstream = [_variable(d) for d in sorted(step.depends_on, key=order.__getitem__)]
        if upstream:
            left = upstream[0] if len(upstream) == 1 else "[" + ", ".join(upstream) + "]"
            lines.append(f"{left} >> {_variable(step.id)}")
    return lines


def _docstring(spec: Pipeline) -> str:
    """The DAG file's docstring: what the pipeline is, wrapped, safe inside triple quotes."""
    head = f"{spec.id}: {spec.description}" if spec.description else spec.id
    body = (f"Team {spec.team}. Each task runs one step of the spec with lineage-audit's step code (the "
            "local runner's); the OpenLineage provider reports the datasets, schemas and column lineage "
            f"it returns. Task jobs are named {spec.id}.<step id>, as the local runner names them.")
    text = textwrap.fill(head, 96) + "\n\n" + textwrap.fill(body, 96)
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
