"""Column lineage of one query: every output column traced to base-table columns.

The query is split into scopes by sqlglot (``build_scope``); each scope is resolved once,
bottom-up, into a ``ScopeLineage``: per output column, the base-table columns it depends on
with their transformations, plus the columns that decide which rows exist at all
(dataset-level: joins, filters, grouping, sorting). An outer scope composes the lineage of
the scopes it reads from, so a column keeps its history through CTEs, derived tables,
unions and subqueries without re-walking them.

We resolve names ourselves instead of running sqlglot's ``qualify``: qualify copies and
rewrites the whole tree, which costs several times the parse; we only need to look names up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sqlglot.expressions as E
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, build_scope

from lineage_auditor.errors import SqlError

from lineage_auditor.sql.dialects import DialectRules
from lineage_auditor.sql.schema import Catalog, Columns
from lineage_auditor.sql.transforms import (
    AGGREGATE,
    IDENT,
    IND_COND,
    IND_FILTER,
    IND_GROUP,
    IND_JOIN,
    IND_SORT,
    IND_WINDOW,
    MASKED,
    MASKING_FUNCTIONS,
    TRANSFORM,
    T,
    compose,
)

Key = tuple[str, str]  # (table name, column name)
Deps = dict[Key, set[T]]
Warn = Callable[[str, E.Expr | None], None]

_AMBIGUOUS: Deps = {}
UNKNOWN_TABLE = ""  # the table of a column that could come from several tables without schema


class UnknownTable(dict):
    """Deps of a column whose table is unknown (``SELECT k FROM a JOIN b`` without a schema).

    The column is still an input, keyed ``("", name)``; the type marks it so the place that
    reads it can warn.
    """

    __slots__ = ()


def unknown_table(name: str) -> Deps:
    return UnknownTable({(UNKNOWN_TABLE, name): {IDENT}})
_SELECTIVE = (E.Coalesce, E.Paren, E.Alias)


def merge_into(out: Deps, deps: Deps, mode: T = IDENT) -> None:
    """Add ``deps`` seen through ``mode`` to ``out``."""
    for key, ts in deps.items():
        target = out.get(key)
        if target is None:
            target = out[key] = set()
        if mode is IDENT:
            target.update(ts)
        else:
            for t in ts:
                target.add(compose(mode, t))


@dataclass(slots=True)
class ScopeLineage:
    """Resolved lineage of one scope's output columns."""

    names: list[str] = field(default_factory=list)
    deps: list[Deps] = field(default_factory=list)
    types: list[str | None] = field(default_factory=list)
    dataset: Deps = field(default_factory=dict)
    passthrough: "Source | None" = None  # where an unexpandable * reads from
    _index: dict[str, int] | None = None

    def add(self, name: str, deps: Deps, type_: str | None = None) -> None:
        self.names.append(name)
        self.deps.append(deps)
        self.types.append(type_)
        self._index = None

    def position(self, name: str) -> int | None:
        if self._index is None:
            self._index = {}
            for i, n in enumerate(self.names):
                self._index.setdefault(n, i)
        return self._index.get(name)


class Source:
    """Something a SELECT reads from: a table or a resolved scope."""

    __slots__ = ()

    def has(self, name: str) -> bool | None:
        """True/False when the columns are known; None when they are not."""
        raise NotImplementedError

    def column(self, name: str) -> Deps | None:
        raise NotImplementedError

    def all_columns(self) -> list[tuple[str, Deps, str | None]] | None:
        raise NotImplementedError

    def dataset(self) -> Deps:
        return {}


class TableSource(Source):
    __slots__ = ("name", "columns", "_cache")

    def __init__(self, name: str, columns: Columns | None) -> None:
        self.name = name
        self.columns = columns
        self._cache: dict[str, Deps] = {}

    def has(self, name: str) -> bool | None:
        return None if self.columns is None else name in self.columns

    def column(self, name: str) -> Deps | None:
        hit = self._cache.get(name)
        if hit is None:
            if self.columns is not None and name not in self.columns:
                return None
            hit = self._cache[name] = {(self.name, name): {IDENT}}
        return hit

    def all_columns(self) -> list[tuple[str, Deps, str | None]] | None:
        if self.columns is None:
            return None
        return [(c, self.column(c) or {}, t) for c, t in self.columns.items()]


class OpaqueSource(Source):
    """A table function (``read_csv(...)``, ``generate_series(...)``): columns of its own."""

    __slots__ = ()

    def has(self, name: str) -> bool | None:
        return None

    def column(self, name: str) -> Deps | None:
        return {}

    def all_columns(self) -> list[tuple[str, Deps, str | None]] | None:
        return None


class OpenSource(Source):
    """``*`` over several tables without schema: any column may exist, its table is unknown."""

    __slots__ = ()

    def has(self, name: str) -> bool | None:
        return None

    def column(self, name: str) -> Deps | None:
        return unknown_table(name)

    def all_columns(self) -> list[tuple[str, Deps, str | None]] | None:
        return None


class ScopeSource(Source):
    __slots__ = ("lineage", "renames")

    def __init__(self, lineage: ScopeLineage, alias_columns: list[str]) -> None:
        self.lineage = lineage
        self.renames = alias_columns

    def _position(self, name: str) -> int | None:
        if self.renames:
            try:
                return self.renames.index(name)
            except ValueError:
                return None
        return self.lineage.position(name)

    def has(self, name: str) -> bool | None:
        if self._position(name) is not None:
            return True
        return None if self.lineage.passthrough is not None else False

    def column(self, name: str) -> Deps | None:
        pos = self._position(name)
        if pos is not None and pos < len(self.lineage.deps):
            return self.lineage.deps[pos]
        if self.lineage.passthrough is not None:
            return self.lineage.passthrough.column(name)
        return None

    def all_columns(self) -> list[tuple[str, Deps, str | None]] | None:
        if self.lineage.passthrough is not None:
            return None
        names = self.renames or self.lineage.names
        return list(zip(names, self.lineage.deps, self.lineage.types))

    def dataset(self) -> Deps:
        return self.lineage.dataset


def alias_columns(node: E.Expr | None, rules: DialectRules) -> list[str]:
    """Column names from an alias list: ``AS d(a, b)`` or ``WITH t(a, b) AS``."""
    if node is None:
        return []
    alias = node.args.get("alias")
    if isinstance(alias, E.TableAlias):
        return [rules.ident(c) for c in alias.columns]
    return []


class Context:
    """Name lookup inside one SELECT: its sources, earlier aliases, the enclosing query."""

    __slots__ = ("sources", "order", "aliases", "parent", "using", "cache")

    def __init__(self, sources: dict[str, Source], order: list[str], parent: "Context | None") -> None:
        self.sources = sources
        self.order = order
        self.aliases: dict[str, Deps] = {}
        self.parent = parent
        self.using: dict[str, None] = {}  # USING (...) columns, in order
        self.cache: dict[tuple[str, str], Deps | None] = {}

    def lookup(self, table: str, name: str) -> Deps | None:
        key = (table, name)
        if key in self.cache:
            return self.cache[key]
        hit = self._lookup_local(table, name)
        if hit is None and self.parent is not None:
            hit = self.parent.lookup(table, name)
        self.cache[key] = hit
        return hit

    def _lookup_local(self, table: str, name: str) -> Deps | None:
        if table:
            src = self.sources.get(table)
            if src is not None:
                return src.column(name)
            struct = self._lookup_local("", table)  # BigQuery struct access: col.field
            if struct and not isinstance(struct, UnknownTable):
                return {k: {compose(TRANSFORM, t) for t in ts} for k, ts in struct.items()}
            return None
        known = [s for s in self.sources.values() if s.has(name)]
        if len(known) == 1:
            return known[0].column(name)
        if known and name in self.using:  # the joined column: either side's value
            merged: Deps = {}
            for src in known:
                merge_into(merged, src.column(name) or {})
            return merged
        if len(known) > 1:
            return _AMBIGUOUS
        alias = self.aliases.get(name)
        if alias is not None:
            return alias
        unknown = [s for s in self.sources.values() if s.has(name) is None]
        if len(unknown) == 1:
            return unknown[0].column(name)
        if unknown and name in self.using:
            joined: Deps = {}
            for src in unknown:
                merge_into(joined, src.column(name) or {})
            return joined
        return unknown_table(name) if unknown else None


class QueryResolver:
    """Resolves every scope of one query against a catalog, collecting warnings."""

    def __init__(self, catalog: Catalog, warn: Warn, rules: DialectRules) -> None:
        self.catalog = catalog
        self.warn = warn
        self.rules = rules
        self.dialect = rules.sqlglot
        self._memo: dict[int, ScopeLineage] = {}
        self._busy: set[int] = set()
        self._scopes: dict[int, Scope] = {}
        self.tables: list[str] = []

    # -- entry point -------------------------------------------------------------
    def resolve_query(self, query: E.Expr) -> ScopeLineage:
        """The lineage of ``query``; a FROM clause naming two tables alike is a SqlError."""
        if isinstance(query, E.Values):
            return self._resolve_values(query)
        try:
            return self._resolve_root(query)
        except OptimizeError as exc:
            if not _name_derived_tables(query):
                raise _duplicate_alias(exc, query) from None
        self._memo.clear()
        self._scopes.clear()
        self.tables.clear()
        try:
            return self._resolve_root(query)
        except OptimizeError as exc:
            raise _duplicate_alias(exc, query) from None

    def _resolve_root(self, query: E.Expr) -> ScopeLineage:
        root = build_scope(query)
        if root is None:
            self.warn("could not analyse this query", query)
            return ScopeLineage()
        for scope in root.traverse():
            self._scopes[id(scope.expression)] = scope
        return self.resolve(root, None)

    # -- scopes ------------------------------------------------------------------
    def resolve(self, scope: Scope, parent: Context | None) -> ScopeLineage:
        key = id(scope.expression)
        done = self._memo.get(key)
        if done is not None:
            return done
        if key in self._busy:  # recursive CTE referring to itself: its anchor defines it
            return self._recursive_anchor(scope)
        self._busy.add(key)
        try:
            expr = scope.expression
            if isinstance(expr, E.SetOperation):
                result = self._resolve_set_operation(scope, parent)
            elif isinstance(expr, E.Select):
                result = self._resolve_select(scope, parent)
            elif isinstance(expr, (E.Unnest, E.Lateral)) or isinstance(expr, E.UDTF):
                result = self._resolve_udtf(scope, parent)
            else:
                result = self._resolve_values(expr)
        finally:
            self._busy.discard(key)
        self._memo[key] = result
        return result

    def _recursive_anchor(self, scope: Scope) -> ScopeLineage:
        union = scope.expression
        while isinstance(union, E.SetOperation):
            union = union.this
        anchor = self._scopes.get(id(union))
        if anchor is None or id(union) in self._busy:
            return ScopeLineage()
        return self.resolve(anchor, None)

    def _resolve_set_operation(self, scope: Scope, parent: Context | None) -> ScopeLineage:
        branches = [self.resolve(s, parent) for s in scope.set_operation_scopes]
        result = ScopeLineage()
        first = branches[0]
        for i, name in enumerate(first.names):
            deps: Deps = {}
            for b in branches:
                if i < len(b.deps):
                    merge_into(deps, b.deps[i])
            result.add(name, deps, first.types[i])
        for b in branches:
            merge_into(result.dataset, b.dataset)
        if any(b.passthrough for b in branches):
            result.passthrough = first.passthrough
        order = scope.expression.args.get("order")
        if order is not None:
            for ordered in order.expressions:
                pos = result.position(ordered.this.name) if isinstance(ordered.this, E.Column) else None
                if pos is not None:
                    merge_into(result.dataset, result.deps[pos], IND_SORT)
        return result

    def _resolve_values(self, expr: E.Expr) -> ScopeLineage:
        result = ScopeLineage()
        names = alias_columns(expr, self.rules)
        width = len(expr.expressions[0].expressions) if isinstance(expr, E.Values) and expr.expressions else len(names)
        for i in range(width):
            result.add(names[i] if i < len(names) else f"_col{i}", {})
        return result

    def _resolve_udtf(self, scope: Scope, parent: Context | None) -> ScopeLineage:
        expr = scope.expression
        ctx = self._context(scope, parent, [])
        result = ScopeLineage()
        inner = [s for s in scope.sources.values() if isinstance(s, Scope)]
        if isinstance(expr, E.Lateral) and inner and not isinstance(expr.this, E.Func):
            sub = self.resolve(inner[0], ctx)
            return ScopeLineage(list(sub.names), list(sub.deps), list(sub.types), dict(sub.dataset))
        deps: Deps = {}
        func = expr.this if isinstance(expr, E.Lateral) else expr
        for arg in func.iter_expressions():
            if not isinstance(arg, (E.TableAlias, E.Identifier)):
                self.walk(arg, TRANSFORM, ctx, deps)
        names = alias_columns(expr, self.rules)
        if not names:
            alias = expr.args.get("alias")
            names = [self.rules.ident(alias.this)] if isinstance(alias, E.TableAlias) and alias.this else ["value"]
        for name in names:
            result.add(name, deps)
        return result

    def _context(self, scope: Scope, parent: Context | None, order: list[str]) -> Context:
        sources: dict[str, Source] = {}
        if scope.is_udtf:
            items = [(self.rules.fold(name), src) for name, src in scope.sources.items()]
        else:
            items = [(self._source_key(node, name), src) for name, (node, src) in scope.selected_sources.items()]
        for name, src in items:
            if isinstance(src, E.Table):
                if not src.name:  # a table function such as read_csv(...): no column lineage
                    sources[name] = OpaqueSource()
                    continue
                canonical = self.catalog.canonical(self.rules.table(src))
                if canonical not in self.tables:
                    self.tables.append(canonical)
                sources[name] = TableSource(canonical, self.catalog.columns(canonical))
            elif isinstance(src, Scope):
                sub_parent = parent if src.is_udtf else None
                lineage = self.resolve(src, sub_parent)
                node = src.expression.parent if not src.is_udtf else src.expression
                sources[name] = ScopeSource(lineage, alias_columns(node, self.rules))
        return Context(sources, order, parent)

    # -- SELECT ------------------------------------------------------------------
    def _resolve_select(self, scope: Scope, parent: Context | None) -> ScopeLineage:
        select: E.Select = scope.expression  # type: ignore[assignment]
        ctx = self._context(scope, parent, self._from_order(select))
        result = ScopeLineage()
        for name in ctx.order:
            src = ctx.sources.get(name)
            if src is not None:
                merge_into(result.dataset, src.dataset())
        self._joins(select, ctx, result.dataset)
        anonymous = 0
        for proj in select.expressions:
            star = proj if isinstance(proj, E.Star) else proj.this if isinstance(proj, E.Column) and isinstance(proj.this, E.Star) else None
            if star is not None:
                qualifier = proj.args.get("table") if isinstance(proj, E.Column) else None
                self._expand_star(star, self.rules.ident(qualifier), ctx, result)
                continue
            deps: Deps = {}
            self.walk(proj, IDENT, ctx, deps)
            named = self._output_name(proj)
            if named is None:
                named = self.rules.unnamed(proj, len(result.names), anonymous)
                anonymous += 1
            result.add(named, deps, self._type_of(proj, ctx))
            if self.rules.lateral_aliases:  # later projections may read this alias
                ctx.aliases.setdefault(named, deps)
        self._clauses(select, ctx, result)
        return result

    def _output_name(self, proj: E.Expr) -> str | None:
        """The name a projection's column gets; None for an unaliased expression."""
        if isinstance(proj, E.Alias):
            alias = proj.args.get("alias")
            return self.rules.ident(alias) if isinstance(alias, E.Identifier) else self.rules.fold(proj.alias)
        if isinstance(proj, E.Column):
            return self.rules.ident(proj.this)
        if isinstance(proj, E.Dot):  # struct.field
            return self.rules.ident(proj.expression)
        if isinstance(proj, E.Paren):  # SELECT (x), SELECT DISTINCT(x): named x
            return self._output_name(proj.this)
        return None

    def _from_order(self, select: E.Select) -> list[str]:
        order: list[str] = []
        from_ = select.args.get("from_") or select.args.get("from")
        nodes = ([from_.this] if from_ is not None else []) + [j.this for j in select.args.get("joins") or []]
        for node in nodes:
            order.append(self._source_key(node, node.alias_or_name))
        return order

    def _source_key(self, node: E.Expr, name: str) -> str:
        """A FROM item's name as the dialect resolves it: its alias, else its table name."""
        alias = node.args.get("alias")
        ident = alias.this if isinstance(alias, E.TableAlias) else alias
        if isinstance(ident, E.Identifier):
            return self.rules.ident(ident)
        if isinstance(node, E.Table) and isinstance(node.this, E.Identifier):
            return self.rules.ident(node.this)
        return self.rules.fold(name)

    def _joins(self, select: E.Select, ctx: Context, out: Deps) -> None:
        for join in select.args.get("joins") or []:
            on = join.args.get("on")
            if on is not None:
                self.walk(on, IND_JOIN, ctx, out)
            for ident in join.args.get("using") or []:
                name = self.rules.ident(ident.this if isinstance(ident, E.Column) else ident)
                ctx.using[name] = None
                for src in ctx.sources.values():
                    if src.has(name) is not False:
                        merge_into(out, src.column(name) or {}, IND_JOIN)

    def _clauses(self, select: E.Select, ctx: Context, result: ScopeLineage) -> None:
        out = result.dataset
        for key, mode in (("where", IND_FILTER), ("having", IND_FILTER), ("qualify", IND_FILTER)):
            clause = select.args.get(key)
            if clause is not None:
                self.walk(clause.this, mode, ctx, out)
        group = select.args.get("group")
        if group is not None:
            for expr in group.expressions:
                self._by_output(expr, IND_GROUP, ctx, result)
        order = select.args.get("order")
        if order is not None:
            for ordered in order.expressions:
                self._by_output(ordered.this if isinstance(ordered, E.Ordered) else ordered, IND_SORT, ctx, result)
        distinct = select.args.get("distinct")
        on = distinct.args.get("on") if distinct is not None else None
        if on is not None:
            for expr in on.expressions if isinstance(on, E.Tuple) else [on]:
                self._by_output(expr, IND_GROUP, ctx, result)

    def _by_output(self, expr: E.Expr, mode: T, ctx: Context, result: ScopeLineage) -> None:
        """GROUP BY / ORDER BY items may name an output by position or alias."""
        if isinstance(expr, E.Literal) and expr.is_int:
            pos = int(expr.this) - 1
            if 0 <= pos < len(result.deps):
                merge_into(result.dataset, result.deps[pos], mode)
            return
        if isinstance(expr, E.Column) and not expr.table:
            name = self.rules.ident(expr.this)
            found = ctx.lookup("", name)
            if found in (None, _AMBIGUOUS) or isinstance(found, UnknownTable):
                named = result.position(name)
                if named is not None:
                    merge_into(result.dataset, result.deps[named], mode)
                    return
        self.walk(expr, mode, ctx, result.dataset)

    def _expand_star(self, star: E.Star, table: str, ctx: Context, result: ScopeLineage) -> None:
        excluded = {self.rules.ident(c.this if isinstance(c, E.Column) else c) for c in star.args.get("except_") or star.args.get("except") or []}
        names = [table] if table else ctx.order
        unresolved: list[str] = []
        joined = self._using_columns(ctx) if not table and ctx.using else {}
        for col, (deps, type_) in joined.items():  # one column per USING name, first
            if col not in excluded:
                result.add(col, deps, type_)
        for name in names:
            src = ctx.sources.get(name)
            if src is None:
                continue
            cols = src.all_columns()
            if cols is None:
                unresolved.append(name)
                result.passthrough = src
                continue
            for col, deps, type_ in cols:
                if col not in excluded and col not in joined:
                    result.add(col, deps, type_)
        if unresolved:
            what = f"{table}.*" if table else "*"
            self.warn(f"cannot expand {what}: no schema for {', '.join(unresolved)} (pass --schema)", star)
            if len(unresolved) > 1:
                result.passthrough = OpenSource()

    @staticmethod
    def _using_columns(ctx: Context) -> dict[str, tuple[Deps, str | None]]:
        """``*`` over ``JOIN ... USING (k)`` has one ``k``: the value of either side's ``k``."""
        out: dict[str, tuple[Deps, str | None]] = {}
        for name in ctx.using:
            deps: Deps = {}
            type_: str | None = None
            for src_name in ctx.order:
                src = ctx.sources.get(src_name)
                if src is None or not src.has(name):
                    continue
                merge_into(deps, src.column(name) or {})
                for col, _, t in src.all_columns() or []:
                    if col == name and type_ is None:
                        type_ = t
            out[name] = (deps, type_)
        return out

    # -- expressions -------------------------------------------------------------
    def walk(self, node: E.Expr, mode: T, ctx: Context, out: Deps) -> None:
        """Add every column ``node`` reads to ``out``, with its transformation."""
        if isinstance(node, E.Column):
            self._column(node, mode, ctx, out)
            return
        if isinstance(node, (E.Literal, E.Star, E.Null, E.Boolean, E.DataType, E.Var, E.Placeholder)):
            return
        if isinstance(node, E.Query) or isinstance(node, E.Subquery):
            self._subquery(node, mode, ctx, out)
            return
        if isinstance(node, _SELECTIVE):
            for child in node.iter_expressions():
                self.walk(child, mode, ctx, out)
            return
        if isinstance(node, E.Case):
            self._case(node, mode, ctx, out)
            return
        if isinstance(node, E.If):
            self.walk(node.this, compose(mode, IND_COND), ctx, out)
            for key in ("true", "false"):
                branch = node.args.get(key)
                if branch is not None:
                    self.walk(branch, mode, ctx, out)
            return
        if isinstance(node, E.Window):
            self._window(node, mode, ctx, out)
            return
        if isinstance(node, E.AggFunc):
            inner = compose(mode, AGGREGATE)
        elif _is_masking(node):
            inner = compose(mode, MASKED)
        else:
            inner = compose(mode, TRANSFORM)
        for arg in node.iter_expressions():
            self.walk(arg, inner, ctx, out)

    def _column(self, node: E.Column, mode: T, ctx: Context, out: Deps) -> None:
        name = self.rules.ident(node.this)
        table = self.rules.ident(node.args.get("table"))
        deps = ctx.lookup(table, name)
        if deps is _AMBIGUOUS:
            self.warn(f"cannot tell which table column {name!r} comes from (pass --schema or qualify it)", node)
        elif isinstance(deps, UnknownTable):
            self.warn(f"cannot tell which table column {name!r} comes from (pass --schema or qualify it); "
                      "recorded with its table unknown", node)
            merge_into(out, deps, mode)
        elif deps is None:
            ref = f"{table}.{name}" if table else name
            self.warn(f"column {ref!r} not found in any table of this query", node)
        else:
            merge_into(out, deps, mode)

    def _case(self, node: E.Case, mode: T, ctx: Context, out: Deps) -> None:
        cond_mode = compose(mode, IND_COND)
        subject = node.this
        if subject is not None:
            self.walk(subject, cond_mode, ctx, out)
        for branch in node.args.get("ifs") or []:
            self.walk(branch.this, cond_mode, ctx, out)
            self.walk(branch.args["true"], mode, ctx, out)
        default = node.args.get("default")
        if default is not None:
            self.walk(default, mode, ctx, out)

    def _window(self, node: E.Window, mode: T, ctx: Context, out: Deps) -> None:
        func = node.this
        self.walk(func, mode if isinstance(func, E.AggFunc) else compose(mode, TRANSFORM), ctx, out)
        win_mode = compose(mode, IND_WINDOW)
        for expr in node.args.get("partition_by") or []:
            self.walk(expr, win_mode, ctx, out)
        order = node.args.get("order")
        if order is not None:
            for ordered in order.expressions:
                self.walk(ordered, win_mode, ctx, out)

    def _subquery(self, node: E.Expr, mode: T, ctx: Context, out: Deps) -> None:
        query = node.this if isinstance(node, E.Subquery) else node
        while isinstance(query, E.Subquery):
            query = query.this
        scope = self._scopes.get(id(query))
        if scope is None:
            return
        lineage = self.resolve(scope, ctx)
        value_mode = mode if len(lineage.deps) == 1 else compose(mode, TRANSFORM)
        for deps in lineage.deps:
            merge_into(out, deps, value_mode)
        merge_into(out, lineage.dataset, mode)

    def _type_of(self, proj: E.Expr, ctx: Context) -> str | None:
        expr = proj.this if isinstance(proj, E.Alias) else proj
        if isinstance(expr, (E.Cast, E.TryCast)):
            return expr.to.sql(dialect=self.dialect)
        if isinstance(expr, E.Column):
            table = self.rules.ident(expr.args.get("table"))
            name = self.rules.ident(expr.this)
            src = ctx.sources.get(table) if table else None
            if src is None and not table:
                known = [s for s in ctx.sources.values() if s.has(name)]
                src = known[0] if len(known) == 1 else None
            if isinstance(src, TableSource) and src.columns:
                return src.columns.get(name)
            if isinstance(src, ScopeSource):
                pos = src._position(name)
                if pos is not None and pos < len(src.lineage.types):
                    return src.lineage.types[pos]
        return None


def _is_masking(node: E.Expr) -> bool:
    if isinstance(node, E.Anonymous):
        return str(node.this).lower() in MASKING_FUNCTIONS
    if isinstance(node, E.Func):
        return node.key in MASKING_FUNCTIONS or node.sql_name().lower() in MASKING_FUNCTIONS
    return False


def _name_derived_tables(query: E.Expr) -> bool:
    """Give unaliased derived tables (``FROM (SELECT ...) JOIN (SELECT ...) USING (id)``) names.

    SQL lets them go unnamed when no column is qualified with them; scopes need a name per
    source. Returns whether any was named.
    """
    named = 0
    for sub in query.find_all(E.Subquery):
        if isinstance(sub.parent, (E.From, E.Join)) and not sub.alias:
            named += 1
            sub.set("alias", E.TableAlias(this=E.to_identifier(f"_derived{named}")))
    return named > 0


def _duplicate_alias(exc: OptimizeError, query: E.Expr) -> SqlError:
    """sqlglot's "Alias already used" as our error, pointing at the second use."""
    message = str(exc)
    alias = message.rsplit(":", 1)[-1].strip() if "Alias already used" in message else ""
    if not alias:
        return SqlError(f"cannot analyse this statement: {message}")
    uses = [t for t in query.find_all(E.Table, E.Subquery) if t.alias_or_name.lower() == alias.lower()]
    line, column = node_position(uses[1] if len(uses) > 1 else query)
    return SqlError(f"table alias {alias!r} is used twice in one FROM clause: give each table its own alias",
                    line=line, column=column)


def node_position(node: E.Expr) -> tuple[int, int]:
    """1-based line and column of the first identifier in ``node`` sqlglot kept a position for."""
    for sub in node.walk():
        meta = getattr(sub, "_meta", None)
        if meta and "line" in meta:
            text = sub.name if isinstance(sub, E.Identifier) else ""
            return int(meta["line"]), max(1, int(meta.get("col", 1)) - len(text) + 1)
    return 0, 0
