"""What a spec will do before it runs: steps in order, datasets read and written, column lineage.

The planner is also the spec's reference checker: step ids are unique, ``depends_on`` and
``load.from`` name steps that exist, the steps form no cycle, SQL files exist and parse, and
every table a step reads is produced by a step it depends on or declared in ``sources``.
All problems are collected (:class:`SpecErrors`), each at the YAML node it is about.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from lineage_auditor.errors import ConfigError
from lineage_auditor.model import (
    DIRECT,
    IDENTITY,
    TRANSFORMATION,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    SqlLineageResult,
    Transformation,
    dataset_ref,
)
from lineage_auditor.sql import analyze_sql
from lineage_auditor.sql.schema import Columns
from lineage_auditor.textfiles import find_node, position, read_text
from pipelines.dsl.loader import LoadedSpec, SpecErrors, SpecProblem
from pipelines.dsl.model import Pipeline, Step, StepKind, coerce_param
from pipelines.dsl.schedule import parse_cron, zone
from pipelines.dsl.templating import RunContext, render

PRODUCERS = (StepKind.EXTRACT, StepKind.SQL, StepKind.PYTHON, StepKind.LOAD)


@dataclass
class StepPlan:
    """One step as it will run: what it needs, reads and writes, and its SQL's lineage."""

    id: str
    kind: StepKind
    depends_on: list[str]
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    sql: str = ""
    lineage: list[DatasetLineage] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    rendered: dict[str, str] = field(default_factory=dict)  # templated settings (url, path) for this run
    run_id: str = ""  # the OpenLineage run the step runs as (set by the runner; rows may be stamped with it)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind.value, "depends_on": self.depends_on,
            "reads": self.reads, "writes": self.writes,
            "column_lineage": {str(d.dataset.name): _fields_json(d) for d in self.lineage},
            "checks": self.checks,
        }


@dataclass
class Plan:
    """A spec planned for one day: its steps in the order the runner takes them."""

    pipeline: Pipeline
    spec: Path
    day: date
    params: dict[str, Any]
    steps: list[StepPlan]
    namespace: str = "warehouse"  # the OpenLineage namespace of the warehouse's datasets
    offline: bool = False  # connectors replay recorded responses (set by the runner for --offline)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline.id, "team": self.pipeline.team, "spec": str(self.spec),
            "date": self.day.isoformat(), "params": {k: _jsonable(v) for k, v in self.params.items()},
            "steps": [s.to_json() for s in self.steps],
        }


def plan_spec(loaded: LoadedSpec, day: date, params: Mapping[str, str] | None = None, *,
              namespace: str | None = None) -> Plan:
    """Check a validated spec's references and plan it for ``day`` (``params`` override defaults).

    ``namespace`` is the OpenLineage namespace of the warehouse (the runner knows it; a plan
    without one names datasets by the spec's ``target``).
    """
    checker = _Planner(loaded, day, dict(params or {}), namespace or loaded.pipeline.target or "warehouse")
    steps = checker.plan()
    if checker.problems:
        raise SpecErrors(checker.problems)
    return Plan(loaded.pipeline, loaded.path, day, checker.params, steps, checker.namespace)


class _Planner:
    def __init__(self, loaded: LoadedSpec, day: date, overrides: dict[str, str], namespace: str) -> None:
        self.loaded = loaded
        self.namespace = namespace
        self.spec = loaded.pipeline
        self.problems: list[SpecProblem] = []
        self.params = self._params(overrides)
        self.context = RunContext(day, params=self.params, target=self.spec.target)
        self.index = {s.id: i for i, s in enumerate(self.spec.steps)}
        self.producer: dict[str, str] = {}  # table (lower case) -> step id
        self.columns: dict[str, Columns] = {}

    # -------------------------------------------------------------- problems

    def problem(self, loc: tuple[Any, ...], message: str, *, file: str = "", line: int = 0, column: int = 0) -> None:
        if not line:
            line, column = position(self.loaded.root, loc)
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        self.problems.append(SpecProblem(file or str(self.loaded.path), line, column, dotted, message))

    def _params(self, overrides: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {name: p.default for name, p in self.spec.params.items()}
        for name, text in overrides.items():
            declared = self.spec.params.get(name)
            if declared is None:
                close = difflib.get_close_matches(name, list(self.spec.params), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"--param {name}: the spec declares no such parameter{hint}", file=str(self.loaded.path))
            try:
                values[name] = coerce_param(declared.type, text)
            except ValueError as exc:
                raise ConfigError(f"--param {name}: {exc}", file=str(self.loaded.path)) from None
        return values

    # -------------------------------------------------------------- planning

    def plan(self) -> list[StepPlan]:
        self._schedule()
        if not self._unique_ids():
            return []  # references to a step id used twice cannot be resolved
        deps = {s.id: self._deps(i, s) for i, s in enumerate(self.spec.steps)}
        order = self._order(deps)
        if order is None:
            return []
        ancestors = _ancestors(deps)
        for table in self.spec.sources:
            self.producer.setdefault(table.lower(), "")
        plans = []
        for step_id in order:
            i = self.index[step_id]
            plans.append(self._step(i, self.spec.steps[i], sorted(deps[step_id], key=self.index.__getitem__), ancestors[step_id]))
        return plans

    def _schedule(self) -> None:
        for key, check in (("schedule", lambda: parse_cron(self.spec.schedule)), ("timezone", lambda: zone(self.spec.timezone))):
            try:
                check()
            except ConfigError as exc:
                self.problem((key,), exc.message)

    def _unique_ids(self) -> bool:
        seen: set[str] = set()
        unique = True
        for i, step in enumerate(self.spec.steps):
            if step.id in seen:
                self.problem(("steps", i, "id"), f"step id {step.id!r} is used twice")
                unique = False
            seen.add(step.id)
        return unique

    def _deps(self, i: int, step: Step) -> set[str]:
        deps = set()
        for j, name in enumerate(step.depends_on):
            if name == step.id:
                self.problem(("steps", i, "depends_on", j), f"step {step.id!r} cannot depend on itself")
            elif self._known_step(name, ("steps", i, "depends_on", j)):
                deps.add(name)
        if step.load is not None:
            source = step.load.from_
            if source == step.id:
                self.problem(("steps", i, "load", "from"), f"step {step.id!r} cannot load from itself")
            elif self._known_step(source, ("steps", i, "load", "from")):
                kind = self.spec.steps[self.index[source]].kind
                if kind not in PRODUCERS:
                    self.problem(("steps", i, "load", "from"), f"step {source!r} is a {kind.value} step: it produces no data to load")
                deps.add(source)
        deps.discard(step.id)
        return deps

    def _known_step(self, name: str, loc: tuple[Any, ...]) -> bool:
        if name in self.index:
            return True
        close = difflib.get_close_matches(name, list(self.index), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.problem(loc, f"no step named {name!r}{hint}")
        return False

    def _order(self, deps: dict[str, set[str]]) -> list[str] | None:
        """Spec order wherever dependencies allow (stable, so plans diff well); None on a cycle."""
        done: list[str] = []
        waiting = [s.id for s in self.spec.steps]
        waiting = list(dict.fromkeys(waiting))
        while waiting:
            ready = next((s for s in waiting if deps[s] <= set(done)), None)
            if ready is None:
                cycle = _rotated(_cycle(deps, waiting), self.index)
                first = cycle[0]
                self.problem(("steps", self.index[first], "depends_on"), "steps depend on each other in a cycle: " + " -> ".join(cycle + [cycle[0]]))
                return None
            done.append(ready)
            waiting.remove(ready)
        return done

    def _step(self, i: int, step: Step, deps: list[str], ancestors: set[str]) -> StepPlan:
        plan = StepPlan(step.id, step.kind, deps)
        if step.extract is not None and step.extract.connector:
            self._connector(i, step, plan)
        elif step.extract is not None:
            self._render_settings(i, step, plan)
            plan.writes.append(step.extract.into)
            origin = step.extract.http or step.extract.file or step.extract.sql or _NoColumns
            self._declare(step.extract.into, [(c.name, c.type) for c in origin.columns])
            self._row_rules(i, step)
        elif step.sql is not None:
            self._sql(i, step, plan, ancestors)
        elif step.python is not None:
            for j, table in enumerate(step.python.inputs):
                self._reads(table, ("steps", i, "python", "inputs", j), ancestors, plan)
            plan.writes.extend(step.python.outputs)
            plan.lineage.extend(self._declared_lineage(i, step))
        elif step.load is not None:
            plan.reads.extend(t for t, p in self.producer.items() if p == step.load.from_)
            plan.writes.append(step.load.table)
            source = next((t for t, p in self.producer.items() if p == step.load.from_), None)
            if step.load.contract:
                self._declare(step.load.table, [(c.name, c.type) for c in step.load.contract])
            elif source and source in self.columns:
                self.columns[step.load.table.lower()] = dict(self.columns[source])
            if source and source in self.columns:
                plan.lineage.append(_copied(self.namespace, source, step.load.table, list(self.columns[source])))
        elif step.check is not None:
            self._reads(step.check.dataset, ("steps", i, "check", "dataset"), ancestors, plan)
            self._check_columns(i, step)
            plan.checks = [_check_text(c.model_dump(exclude_none=True, exclude_defaults=True)) for c in step.check.checks]
        self._check_writes(i, step, plan)
        for table in plan.writes:
            self.producer[table.lower()] = step.id
        return plan

    def _connector(self, i: int, step: Step, plan: StepPlan) -> None:
        """A named connector's tables, so later steps can read them (and its options checked)."""
        from pipelines.dsl.connectors import connector

        extract = step.extract
        assert extract is not None
        try:
            tables = connector(extract.connector).tables(extract.into, extract.options)
        except ConfigError as exc:
            key = "connector" if exc.message.startswith("no connector") else "options"
            self.problem(("steps", i, "extract", key), exc.message)
            plan.writes.append(extract.into)  # later steps still see the table: one problem, not a cascade
            return
        for table, columns in tables.items():
            plan.writes.append(table)
            self._declare(table, columns)

    def _row_rules(self, i: int, step: Step) -> None:
        """Every column an extract's ``reject`` rules name is one of its declared columns."""
        assert step.extract is not None
        kind = "http" if step.extract.http else "file"
        origin = step.extract.http or step.extract.file
        rules = getattr(origin, "reject", None)
        if origin is None or rules is None:
            return
        declared = [c.name for c in origin.columns]
        named = [(("unique", j), c) for j, c in enumerate(rules.unique)]
        named += [((rule, c), c) for rule in ("accepted_values", "patterns") for c in getattr(rules, rule)]
        for where, column in named:
            if column not in declared:
                close = difflib.get_close_matches(column, declared, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(("steps", i, "extract", kind, "reject", *where),
                             f"{column!r} is not a declared column ({', '.join(declared)}){hint}")

    def _indent(self, line: int) -> int:
        """Leading spaces of a line of the spec (the text the YAML parser kept: no second read)."""
        buffer = getattr(self.loaded.root.start_mark, "buffer", None) or ""
        lines = str(buffer).splitlines()
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        return len(text) - len(text.lstrip(" "))

    def _render_settings(self, i: int, step: Step, plan: StepPlan) -> None:
        """The extract's templated strings (an API URL, a file path) rendered for this run."""
        extract = step.extract
        assert extract is not None
        for kind, key, value in (("http", "url", extract.http.url if extract.http else None),
                                 ("file", "path", extract.file.path if extract.file else None),
                                 ("sql", "query", extract.sql.query if extract.sql else None),
                                 ("dataset_namespace", "dataset_namespace", extract.dataset_namespace or None)):
            if value is None:
                continue
            loc = ("steps", i, "extract", kind, key) if kind != key else ("steps", i, "extract", key)
            line, column = position(self.loaded.root, loc)
            try:
                plan.rendered[key] = render(value, self.context, folder=self.loaded.path.parent,
                                            file=str(self.loaded.path), line=line, column=column)
            except ConfigError as exc:
                self.problem(loc, exc.message, line=exc.line or line, column=exc.column)

    def _declared_lineage(self, i: int, step: Step) -> list[DatasetLineage]:
        """A python step's ``column_lineage`` (output table.column: [input table.column, ...]) as lineage."""
        assert step.python is not None
        outputs = {t.lower() for t in step.python.outputs}
        inputs = {t.lower() for t in step.python.inputs}
        fields: dict[str, list[OutputField]] = {}
        for key, sources in step.python.column_lineage.items():
            loc = ("steps", i, "python", "column_lineage", key)
            table, _, column = key.rpartition(".")
            if table.lower() not in outputs:
                self.problem(loc, f"{key}: {table or key} is not one of the step's outputs ({', '.join(step.python.outputs)})")
                continue
            found = []
            for source in sources:
                source_table, _, source_column = source.rpartition(".")
                if source_table.lower() not in inputs:
                    self.problem(loc, f"{source}: {source_table or source} is not one of the step's inputs")
                    continue
                found.append(InputField(ColumnRef(dataset_ref(self.namespace, source_table), source_column),
                                        [Transformation(DIRECT, TRANSFORMATION, description="declared by the step")]))
            out = fields.setdefault(table, [])
            out.append(OutputField(column, len(out), found))
        return [DatasetLineage(dataset_ref(self.namespace, table), outs) for table, outs in fields.items()]

    def _check_columns(self, i: int, step: Step) -> None:
        """A check naming a column its dataset does not have is a problem (when the columns are known)."""
        assert step.check is not None
        known = self.columns.get(step.check.dataset.lower())
        if not known:
            return
        for j, check in enumerate(step.check.checks):
            for key, column in check.columns:
                if column.lower() not in known:
                    close = difflib.get_close_matches(column.lower(), list(known), n=1, cutoff=0.6)
                    hint = f" (did you mean {close[0]!r}?)" if close else f" (it has {', '.join(known)})"
                    self.problem(("steps", i, "check", "checks", j, *key),
                                 f"{step.check.dataset} has no column {column!r}{hint}")

    def _check_writes(self, i: int, step: Step, plan: StepPlan) -> None:
        """One producer per table, none of them a declared source; a SQL step writes something."""
        declared = {t.lower() for t in self.spec.sources}
        for table in plan.writes:
            key = table.lower()
            if key in declared:
                self.problem(("steps", i), f"writes {table}, which is declared in sources (read-only for this pipeline)")
            elif self.producer.get(key):
                self.problem(("steps", i), f"writes {table}, which step {self.producer[key]!r} writes too "
                                           "(one step per table: load or append from one place)")
        if step.sql is not None and not plan.writes and plan.sql.strip() and not any(
                p.file == str(self.loaded.path) and p.path.startswith(f"steps[{i}]") for p in self.problems):
            self.problem(("steps", i, "sql"), "the SQL writes no table (a query's result would be thrown away; "
                                              "use CREATE TABLE ... AS, INSERT, or a gate with a sql probe)")

    def _declare(self, table: str, columns: list[tuple[str, str]]) -> None:
        if columns:
            self.columns[table.lower()] = {name.lower(): kind for name, kind in columns}

    def _reads(self, table: str, loc: tuple[Any, ...], ancestors: set[str], plan: StepPlan, *,
               file: str = "", line: int = 0, column: int = 0) -> None:
        plan.reads.append(table)
        key = table.lower()
        if key not in self.producer:
            later = next((s.id for s in self.spec.steps if _writes_table(s, key)), None)
            why = (f"step {later!r} writes it but does not run before this one (add depends_on: [{later}])" if later
                   else "no step produces it and it is not declared in sources")
            self.problem(loc, f"reads {table}: {why}", file=file, line=line, column=column)
            return
        producer = self.producer[key]
        if producer and producer not in ancestors:
            self.problem(loc, f"reads {table}, written by step {producer!r}, which it does not depend on "
                              f"(add depends_on: [{producer}])", file=file, line=line, column=column)

    def _sql(self, i: int, step: Step, plan: StepPlan, ancestors: set[str]) -> None:
        assert step.sql is not None
        folder = self.loaded.path.parent
        loc: tuple[Any, ...] = ("steps", i, "sql", "file" if step.sql.file else "query")
        if step.sql.file:
            path = folder / step.sql.file
            if not path.is_file():
                self.problem(loc, f"{step.sql.file}: no such file")
                return
            try:
                text = read_text(path, what="SQL file")
            except ConfigError as exc:  # not UTF-8, unreadable: at the file's own line and column
                self.problem(loc, exc.message, file=exc.file, line=exc.line, column=exc.column)
                return
            file, first_line, column = str(path), 1, 0
        indent = 0  # where the SQL's own columns start in the file (an inline block scalar is indented)
        if not step.sql.file:
            text = step.sql.query
            file = str(self.loaded.path)
            first_line, column = position(self.loaded.root, loc)
            if _is_block(self.loaded.root, loc):
                first_line += 1
                indent = self._indent(first_line)
                column = indent + 1
        try:
            plan.sql = render(text, self.context, folder=folder, file=file, line=first_line, column=column)
        except ConfigError as exc:
            self.problem(loc, exc.message, file=exc.file, line=exc.line or first_line, column=exc.column)
            return
        result = analyze_sql(plan.sql, file=file, dialect=step.sql.dialect, schema=dict(self.columns), namespace=self.namespace)
        self._sql_result(result, loc, plan, ancestors, file, first_line, indent)

    def _sql_result(self, result: SqlLineageResult, loc: tuple[Any, ...], plan: StepPlan, ancestors: set[str],
                    file: str, first_line: int, offset: int) -> None:
        for error in result.errors:
            self.problem(loc, error.message, file=file, line=first_line + max(error.line - 1, 0),
                         column=error.column + offset if error.column else 0)
        written = {o.dataset.name.lower() for s in result.statements for o in s.outputs}
        for statement in result.statements:
            for ref in statement.inputs:
                if ref.name.lower() not in written and ref.name not in plan.reads:
                    line, column = _find(plan.sql, ref.name, statement.line)
                    self._reads(ref.name, loc, ancestors, plan, file=file, line=first_line + line - 1,
                                column=column + offset)
            for out in statement.outputs if statement.kind != "SELECT" else ():  # a bare SELECT writes nothing
                if out.dataset.name not in plan.writes:
                    plan.writes.append(out.dataset.name)
                plan.lineage.append(out)
                if out.fields:
                    self.columns[out.dataset.name.lower()] = {f.name.lower(): f.type for f in out.fields}


class _NoColumns:
    columns: list[Any] = []


def _copied(namespace: str, source: str, table: str, columns: list[str]) -> DatasetLineage:
    """A load's column lineage: every column of the loaded table is the source's, unchanged."""
    return copied_lineage(dataset_ref(namespace, source), dataset_ref(namespace, table), columns)


def copied_lineage(source: DatasetRef, target: DatasetRef, columns: list[str], *,
                   sources: list[str] | None = None) -> DatasetLineage:
    """Column lineage of a copy: each column of ``target`` is the same-named one of ``source`` (or the
    one ``sources`` names at its position), unchanged: a load between tables, an extract from an
    API's records or a file's columns."""
    return DatasetLineage(target, [
        OutputField(name, position, [InputField(ColumnRef(source, (sources or columns)[position]),
                                                [Transformation(DIRECT, IDENTITY)])])
        for position, name in enumerate(columns)])


def _writes_table(step: Step, table: str) -> bool:
    if step.extract is not None:
        return step.extract.into.lower() == table
    if step.load is not None:
        return step.load.table.lower() == table
    if step.python is not None:
        return table in {t.lower() for t in step.python.outputs}
    return False  # a SQL step's outputs are known once it is analysed, in order


def _is_block(root: Any, loc: tuple[Any, ...]) -> bool:
    """True when the value at ``loc`` is a YAML block scalar (its text starts on the next line)."""
    style = getattr(find_node(root, loc), "style", None)
    return style in ("|", ">")


def _find(sql: str, table: str, from_line: int) -> tuple[int, int]:
    """1-based line and column of ``table`` in ``sql`` (searched from ``from_line``; else that line)."""
    lines = sql.splitlines()
    needle = table.lower()
    for number in range(max(from_line, 1), len(lines) + 1):
        at = lines[number - 1].lower().find(needle)
        if at >= 0:
            return number, at + 1
    return max(from_line, 1), 1


def _ancestors(deps: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def visit(step: str, trail: frozenset[str]) -> set[str]:
        if step in out:
            return out[step]
        found: set[str] = set()
        for dep in deps.get(step, ()):
            if dep not in trail:
                found |= {dep} | visit(dep, trail | {dep})
        out[step] = found
        return found

    for step in deps:
        visit(step, frozenset({step}))
    return out


def _cycle(deps: dict[str, set[str]], waiting: list[str]) -> list[str]:
    """One cycle among the steps that could not be ordered, in dependency order."""
    pending = set(waiting)
    start = waiting[0]
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = sorted(d for d in deps[node] if d in pending)[0]
    return path[path.index(node):][::-1]


def _rotated(cycle: list[str], index: Mapping[str, int]) -> list[str]:
    """The cycle starting at the step that comes first in the spec."""
    first = min(range(len(cycle)), key=lambda i: index[cycle[i]])
    return cycle[first:] + cycle[:first]


def _check_text(check: dict[str, Any]) -> str:
    severity = check.pop("severity", "error")
    kind, value = next(iter(check.items()))
    return f"{kind} {value}" + (f" [{severity}]" if severity != "error" else "")


def _fields_json(lineage: DatasetLineage) -> dict[str, Any]:
    return {
        f.name: [{"from": f"{i.column.dataset.name}.{i.column.field}",
                  "transformations": [f"{t.type}/{t.subtype}" + (" masked" if t.masking else "") for t in i.transformations]}
                 for i in f.inputs]
        for f in lineage.fields
    }


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
