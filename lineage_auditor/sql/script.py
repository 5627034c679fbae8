"""Column lineage of SQL files: statement by statement, and end to end through a script.

A script's later statements read tables its earlier ones created; the catalog learns each
created table's columns so ``*`` keeps expanding, and each write's lineage is stored already
traced back to tables the script did not create, so ``end_to_end`` falls out directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot.expressions as E

from lineage_auditor.errors import SqlError
from lineage_auditor.model import (
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    Problem,
    SqlLineageResult,
    StatementLineage,
)
from lineage_auditor.sql.resolver import Deps, QueryResolver, ScopeLineage, merge_into
from lineage_auditor.sql.schema import Catalog, Columns
from lineage_auditor.sql.split import ParsedStatement, parse_statements
from lineage_auditor.sql.statements import SELECT, SchemaStatement, WriteStatement, classify
from lineage_auditor.sql.transforms import T, to_model
from lineage_auditor.textfiles import read_text

DEFAULT_NAMESPACE = "default"


@dataclass(slots=True)
class _Written:
    """A dataset the script wrote, with lineage traced to tables it did not create."""

    names: list[str] = field(default_factory=list)
    deps: list[Deps] = field(default_factory=list)
    types: list[str | None] = field(default_factory=list)
    dataset: Deps = field(default_factory=dict)
    temporary: bool = False

    def position(self, name: str) -> int | None:
        try:
            return self.names.index(name)
        except ValueError:
            return None


class ScriptAnalyzer:
    """Analyses statements in order, sharing one catalog across files of one run."""

    def __init__(self, *, dialect: str | None, schema: dict[str, Columns] | None, namespace: str) -> None:
        self.dialect = dialect
        self.catalog = Catalog(schema)
        self.namespace = namespace
        self.result = SqlLineageResult()
        self._written: dict[str, _Written] = {}
        self._seen_warnings: set[tuple[str, int, int, str]] = set()
        self._text = ""

    # -- public --------------------------------------------------------------------
    def add_sql(self, sql: str, *, file: str) -> None:
        statements, errors = parse_statements(sql, dialect=self.dialect, file=file)
        self._text = sql
        self.result.errors.extend(errors)
        for parsed in statements:
            self._statement(parsed, file)

    def finish(self) -> SqlLineageResult:
        self.result.end_to_end = [
            self._dataset_lineage(name, w, w.deps, w.dataset)
            for name, w in self._written.items()
            if not w.temporary
        ]
        return self.result

    # -- statements ----------------------------------------------------------------
    def _statement(self, parsed: ParsedStatement, file: str) -> None:
        try:
            stmt = classify(parsed.expression)
        except (KeyError, AttributeError, TypeError) as exc:  # unusual trees sqlglot accepted
            self._warn(file, parsed.line, parsed.column, f"statement skipped: cannot analyse ({exc})")
            return
        if stmt is None:
            return
        if isinstance(stmt, SchemaStatement):
            if stmt.action == "define":
                self.catalog.define(self.catalog.canonical(stmt.target), stmt.columns)
            else:
                self.catalog.drop(self.catalog.canonical(stmt.target))
            return
        self._write(stmt, parsed, file)

    def _write(self, stmt: WriteStatement, parsed: ParsedStatement, file: str) -> None:
        index = len(self.result.statements)

        def warn(message: str, node: E.Expr | None) -> None:
            line, col = _node_position(node) if node is not None else (0, 0)
            self._warn(file, line or parsed.line, col or parsed.column, message)

        resolver = QueryResolver(self.catalog, warn, self.dialect)
        lineage = resolver.resolve_query(stmt.query)
        target = self.catalog.canonical(stmt.target) if stmt.target else f"_select_{index}"
        names, deps, types = self._target_columns(stmt, target, lineage, warn)
        dataset = dict(lineage.dataset)
        self.result.statements.append(
            StatementLineage(
                index=index,
                file=file,
                line=parsed.line,
                kind=stmt.kind,
                sql=self._text[parsed.start:parsed.end].strip(),
                inputs=[DatasetRef(self.namespace, t) for t in resolver.tables],
                outputs=[self._dataset_lineage(target, _Written(names, deps, types), deps, dataset)],
            )
        )
        self._remember(stmt, target, names, deps, types, dataset)

    def _target_columns(
        self, stmt: WriteStatement, target: str, lineage: ScopeLineage, warn
    ) -> tuple[list[str], list[Deps], list[str | None]]:
        """Map the query's outputs onto the target's columns, by position."""
        if stmt.kind == SELECT or stmt.kind.startswith("CREATE") and not stmt.columns:
            return list(lineage.names), list(lineage.deps), list(lineage.types)
        known = self.catalog.columns(target)
        if stmt.kind in ("MERGE", "UPDATE"):
            return _combine_assignments(stmt.columns, lineage, known)
        columns = stmt.columns or (list(known) if known else [])
        if not columns:
            if stmt.kind == "INSERT":
                warn(f"columns of {target} unknown: mapping the SELECT's output names onto it (pass --schema)", None)
            return list(lineage.names), list(lineage.deps), list(lineage.types)
        if len(columns) != len(lineage.deps):
            warn(f"{target}: {len(columns)} target columns but the query produces {len(lineage.deps)}", None)
        n = min(len(columns), len(lineage.deps))
        types = [(known or {}).get(c) or lineage.types[i] for i, c in enumerate(columns[:n])]
        return columns[:n], lineage.deps[:n], types

    def _remember(self, stmt: WriteStatement, target: str, names: list[str], deps: list[Deps],
                  types: list[str | None], dataset: Deps) -> None:
        """Store the write traced through earlier writes; teach the catalog its columns."""
        traced = [self._trace(d) for d in deps]
        traced_dataset = self._trace(dataset)
        for d in deps:
            self._trace_dataset_of_sources(d, traced_dataset)
        self._trace_dataset_of_sources(dataset, traced_dataset)
        written = self._written.get(target)
        if written is None or stmt.kind.startswith("CREATE"):
            written = self._written[target] = _Written(temporary=stmt.temporary)
        for name, d, t in zip(names, traced, types):
            pos = written.position(name)
            if pos is None:
                written.names.append(name)
                written.deps.append({})
                written.types.append(t)
                pos = len(written.names) - 1
            merge_into(written.deps[pos], d)
        merge_into(written.dataset, traced_dataset)
        if stmt.target and (stmt.kind.startswith("CREATE") or self.catalog.columns(target) is None):
            self.catalog.define(target, dict(zip(written.names, written.types)))

    def _trace(self, deps: Deps) -> Deps:
        """Replace columns of tables this script wrote by where those came from."""
        out: Deps = {}
        for (table, col), ts in deps.items():
            source = self._written.get(table)
            pos = source.position(col) if source is not None else None
            if source is None or pos is None:
                out.setdefault((table, col), set()).update(ts)
                continue
            for t in ts:
                merge_into(out, source.deps[pos], t)
        return out

    def _trace_dataset_of_sources(self, deps: Deps, out: Deps) -> None:
        """Rows of an earlier write were filtered/joined: that shapes this dataset too."""
        for table in {table for table, _ in deps}:
            source = self._written.get(table)
            if source is not None:
                merge_into(out, source.dataset)

    # -- output ------------------------------------------------------------------
    def _dataset_lineage(self, name: str, w: _Written, deps: list[Deps], dataset: Deps) -> DatasetLineage:
        ns = self.namespace
        fields = [
            OutputField(name=n, position=i + 1, inputs=_inputs(ns, d), type=w.types[i] if i < len(w.types) else None)
            for i, (n, d) in enumerate(zip(w.names, deps))
        ]
        return DatasetLineage(DatasetRef(ns, name), fields, _inputs(ns, dataset))

    def _warn(self, file: str, line: int, column: int, message: str) -> None:
        key = (file, line, column, message)
        if key not in self._seen_warnings:
            self._seen_warnings.add(key)
            self.result.warnings.append(Problem(message, file=file, line=line, column=column))


def _combine_assignments(columns: list[str], lineage: ScopeLineage, known: Columns | None):
    """MERGE may assign a column in several WHEN branches: one output column each."""
    names: list[str] = []
    deps: list[Deps] = []
    for name, d in zip(columns, lineage.deps):
        if name in names:
            merge_into(deps[names.index(name)], d)
        else:
            names.append(name)
            deps.append(dict((k, set(v)) for k, v in d.items()))
    return names, deps, [(known or {}).get(n) for n in names]


def _inputs(namespace: str, deps: Deps) -> list[InputField]:
    return [
        InputField(ColumnRef(DatasetRef(namespace, table), col), [to_model(t) for t in sorted(ts)])
        for (table, col), ts in sorted(deps.items())
    ]


def _node_position(node: E.Expr) -> tuple[int, int]:
    """1-based line and column of the first identifier sqlglot kept a position for."""
    for sub in node.walk():
        meta = getattr(sub, "_meta", None)
        if meta and "line" in meta:
            text = sub.name if isinstance(sub, E.Identifier) else ""
            return int(meta["line"]), max(1, int(meta.get("col", 1)) - len(text) + 1)
    return 0, 0


def analyze_sql(
    sql: str,
    *,
    file: str = "<sql>",
    dialect: str | None = None,
    schema: dict[str, Columns] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> SqlLineageResult:
    """Column lineage of every statement in ``sql`` (one file or script)."""
    analyzer = ScriptAnalyzer(dialect=dialect, schema=schema, namespace=namespace)
    analyzer.add_sql(sql, file=file)
    return analyzer.finish()


def analyze_files(
    paths: list[str | Path],
    *,
    dialect: str | None = None,
    schema: dict[str, Columns] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    on_file: Callable[[str], None] | None = None,
) -> SqlLineageResult:
    """Column lineage of several files, in order, as one script (later files see earlier ones).

    ``on_file`` is called with each path before it is read (for a progress display).
    """
    analyzer = ScriptAnalyzer(dialect=dialect, schema=schema, namespace=namespace)
    for path in paths:
        if on_file is not None:
            on_file(str(path))
        text = read_text(path, what="SQL file", error=SqlError)
        analyzer.add_sql(text, file=str(path))
    return analyzer.finish()
