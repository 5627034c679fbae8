"""What a statement writes, and the query that computes it.

Every writing statement is reduced to (kind, target, target columns, query): CTAS and views
read their SELECT, INSERT maps its SELECT positionally onto the column list, and MERGE and
UPDATE are rewritten into one SELECT over the target and its source whose projections are
the assigned values, so one resolver handles them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot.expressions as E

from lineage_auditor.sql.dialects import DialectRules

CREATE_TABLE_AS = "CREATE_TABLE_AS"
CREATE_VIEW = "CREATE_VIEW"
INSERT = "INSERT"
MERGE = "MERGE"
UPDATE = "UPDATE"
SELECT = "SELECT"


@dataclass(slots=True)
class WriteStatement:
    """One statement reduced to the query whose outputs land in ``target``."""

    kind: str
    target: str | None  # None for a plain SELECT
    query: E.Expr
    columns: list[str] = field(default_factory=list)  # explicit target columns, positional
    temporary: bool = False


@dataclass(slots=True)
class SchemaStatement:
    """DDL that changes the catalog without lineage: CREATE TABLE (cols), DROP."""

    action: str  # "define" | "drop"
    target: str
    columns: dict[str, str | None] = field(default_factory=dict)


def _target(node: E.Expr, rules: DialectRules) -> tuple[str, list[str]]:
    """Table name and explicit column list of ``t`` or ``t (a, b)``."""
    if isinstance(node, E.Schema):
        cols = [rules.ident(c.this if isinstance(c, E.ColumnDef) else c) for c in node.expressions]
        return rules.table(node.this), cols
    if isinstance(node, E.Table):
        return rules.table(node), []
    return rules.ident(node), []


def _is_temporary(create: E.Create) -> bool:
    props = create.args.get("properties")
    if props is not None and any(isinstance(p, E.TemporaryProperty) for p in props.expressions):
        return True
    return bool(create.args.get("temporary"))


def _with_ctes(outer: E.Expr, query: E.Expr) -> E.Expr:
    """Move a statement-level WITH (``WITH x AS (...) INSERT ...``) onto its query."""
    with_ = outer.args.get("with_") or outer.args.get("with")
    if with_ is not None and isinstance(query, E.Query) and not (query.args.get("with_") or query.args.get("with")):
        query.set("with_" if "with_" in type(query).arg_types else "with", with_)
    return query


def classify(stmt: E.Expr, rules: DialectRules) -> WriteStatement | SchemaStatement | None:
    """Reduce a parsed statement; None for statements with no lineage (SET, GRANT, ...)."""
    if isinstance(stmt, E.Select) and stmt.args.get("into") is not None:
        return _select_into(stmt, rules)
    if isinstance(stmt, E.Query):
        return WriteStatement(SELECT, None, stmt)
    if isinstance(stmt, E.Create):
        return _create(stmt, rules)
    if isinstance(stmt, E.Insert):
        query = stmt.expression
        while isinstance(query, E.Subquery):  # INSERT INTO t (a, b) (SELECT ...)
            query = query.this
        if query is None:
            return None
        target, cols = _target(stmt.this, rules)
        return WriteStatement(INSERT, target, _with_ctes(stmt, query), cols)
    if isinstance(stmt, E.Merge):
        return _merge(stmt, rules)
    if isinstance(stmt, E.Update):
        return _update(stmt, rules)
    if isinstance(stmt, E.Drop):
        node = stmt.this
        return SchemaStatement("drop", rules.table(node) if isinstance(node, E.Table) else rules.ident(node))
    return None


def _create(stmt: E.Create, rules: DialectRules) -> WriteStatement | SchemaStatement | None:
    kind = str(stmt.args.get("kind") or "").upper()
    if kind not in ("TABLE", "VIEW"):
        return None
    target, cols = _target(stmt.this, rules)
    query = stmt.expression
    if isinstance(query, E.Subquery):
        query = query.unnest()
    if query is None or not isinstance(query, E.Query):
        if isinstance(stmt.this, E.Schema):
            defs = {
                rules.ident(c.this): (c.args["kind"].sql() if c.args.get("kind") else None)
                for c in stmt.this.expressions
                if isinstance(c, E.ColumnDef)
            }
            return SchemaStatement("define", target, defs)
        return None
    return WriteStatement(
        CREATE_VIEW if kind == "VIEW" else CREATE_TABLE_AS,
        target,
        _with_ctes(stmt, query),
        cols,
        _is_temporary(stmt),
    )


def _select_into(stmt: E.Select, rules: DialectRules) -> WriteStatement:
    """``SELECT ... INTO t FROM ...`` (T-SQL, PostgreSQL) creates ``t``."""
    into = stmt.args["into"]
    stmt.set("into", None)
    table = into.this
    name = rules.table(table) if isinstance(table, E.Table) else rules.ident(table)
    temporary = bool(into.args.get("temporary")) or name.startswith("#")
    return WriteStatement(CREATE_TABLE_AS, name.lstrip("#"), stmt, [], temporary)


def _assignments(updates: list[E.Expr], rules: DialectRules) -> list[tuple[str, E.Expr]]:
    out = []
    for eq in updates:
        if isinstance(eq, E.EQ) and isinstance(eq.this, E.Column):
            out.append((rules.ident(eq.this.this), eq.expression))
    return out


def _merge(stmt: E.Merge, rules: DialectRules) -> WriteStatement:
    target_node: E.Table = stmt.this
    target = rules.table(target_node)
    assigned: list[tuple[str, E.Expr]] = []
    conditions: list[E.Expr] = []
    whens = stmt.args.get("whens")
    for when in (whens.expressions if whens is not None else []):
        cond = when.args.get("condition")
        if cond is not None:
            conditions.append(cond.copy())
        then = when.args.get("then")
        if isinstance(then, E.Update):
            assigned.extend(_assignments(then.expressions, rules))
        elif isinstance(then, E.Insert):
            cols = then.this.expressions if isinstance(then.this, E.Tuple) else []
            vals = then.expression.expressions if isinstance(then.expression, E.Tuple) else []
            assigned.extend((rules.ident(c.this if isinstance(c, E.Column) else c), v) for c, v in zip(cols, vals))
    query = E.select(*[E.alias_(value.copy(), f"__c{i}") for i, (_, value) in enumerate(assigned)])
    query = query.from_(stmt.args["using"].copy()).join(target_node.copy(), on=stmt.args["on"].copy())
    if conditions:
        query = query.where(E.or_(*conditions))
    return WriteStatement(MERGE, target, _with_ctes(stmt, query), [name for name, _ in assigned])


def _aliased_target(target: E.Table, sources: list[E.Expr], rules: DialectRules) -> E.Table | None:
    """T-SQL's ``UPDATE o SET ... FROM orders o JOIN ...``: the target is a FROM alias.

    An unqualified target named like a table alias (or an unaliased table) of the FROM clause
    is that table, not a second copy of it.
    """
    if target.args.get("db") is not None:
        return None
    name = rules.ident(target.this)
    for node in sources:
        if isinstance(node, E.Table) and node.name and rules.ident(node.alias or node.this) == name:
            return node
    return None


def _update(stmt: E.Update, rules: DialectRules) -> WriteStatement:
    target_node: E.Table = stmt.this
    assigned = _assignments(stmt.expressions, rules)
    query = E.select(*[E.alias_(value.copy(), f"__c{i}") for i, (_, value) in enumerate(assigned)])
    from_ = stmt.args.get("from_") or stmt.args.get("from")
    first = None
    joins = list(stmt.args.get("joins") or [])
    if from_ is not None:
        first = from_.this.copy()
        joins += first.args.get("joins") or []  # sqlglot hangs UPDATE ... FROM's joins on its table
        first.set("joins", None)
    sources = ([first] if first is not None else []) + [j.this for j in joins]
    through_alias = _aliased_target(target_node, sources, rules)
    target = rules.table(through_alias if through_alias is not None else target_node)
    if through_alias is None:
        query = query.from_(target_node.copy())
        if first is not None:
            query = query.join(first)
    elif first is not None:
        query = query.from_(first)
    for join in joins:
        query = query.join(join.copy())
    where = stmt.args.get("where")
    if where is not None:
        query = query.where(where.this.copy())
    return WriteStatement(UPDATE, target, _with_ctes(stmt, query), [name for name, _ in assigned])
