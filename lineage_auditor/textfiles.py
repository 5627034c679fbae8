"""Reading the user's text files: UTF-8, YAML and JSON, with hostile input turned into our errors.

Every reader of a file a user hands us (schema, audit config, pipeline spec, openlineage.yml,
SQL, event files, the spool) decodes and parses here, so a byte that is not UTF-8, a
document nested five thousand levels deep or a value YAML cannot build is one clear error
naming ``file:line:column``, never a ``UnicodeDecodeError`` or ``RecursionError``, and
says the same thing whichever reader met it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from lineage_auditor.errors import ConfigError, LineageAuditError, yaml_error

#: YAML nested deeper than this is refused: no file we read needs a tenth of it, and
#: PyYAML's composer recurses once per level (Python's recursion limit is about 1000).
MAX_DEPTH = 100
#: JSON deeper than json's decoder can go is reported at the bracket opening this level.
JSON_REPORT_DEPTH = 500
#: Aliases may repeat a subtree; a document that expands past this many nodes (a "billion
#: laughs" file) is refused before anything walks the expansion.
MAX_EXPANDED_NODES = 2_000_000


def decode_utf8(
    data: bytes, *, file: str, line: int = 0, error: type[LineageAuditError] = ConfigError
) -> str:
    """``data`` as text, or ``error`` pointing at the first byte that is not UTF-8.

    ``line`` is the line ``data`` starts at when it is one line of a larger file (NDJSON);
    otherwise the line and column are counted in ``data``. A UTF-8 byte-order mark is dropped.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start
        if line:
            where_line, column = line, start + 1
        else:
            where_line = data.count(b"\n", 0, start) + 1
            column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise error(
            f"not UTF-8 text ({exc.reason} at byte {start + 1})", file=file, line=where_line, column=column
        ) from None


def read_text(
    path: str | os.PathLike[str], *, what: str, error: type[LineageAuditError] = ConfigError
) -> str:
    """A whole text file; ``what`` names it in the message (``cannot read config: ...``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise error(f"cannot read {what}: is a folder, not a file", file=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", file=str(path)) from None
    return decode_utf8(data, file=str(path), error=error)


# ---------------------------------------------------------------------------- YAML


class _TooDeep(yaml.MarkedYAMLError):
    """Nesting past :data:`MAX_DEPTH`, at the node that went one level too far."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting limit (its composer recurses once per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self.aliases = 0
        self.last_node: yaml.Node | None = None

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        self.last_node = node  # where a value that cannot be built is reported
        return super().construct_object(node, deep)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooDeep(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str, *, file: str) -> tuple[Any, yaml.Node | None]:
    """One YAML document as data plus its node tree (for pointing errors at lines).

    Errors are a :class:`ConfigError` at the line and column where parsing stopped,
    including values YAML recognises but cannot build (``2024-13-45`` as a date), an
    alias that contains itself, and aliases that expand past :data:`MAX_EXPANDED_NODES`.
    """
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None:
            return None, None
        if loader.aliases:
            _check_expansion(root)
        try:
            return loader.construct_document(root), root
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp with month 13
            mark = (loader.last_node or root).start_mark
            raise ConfigError(f"invalid YAML value: {exc}", file=file, line=mark.line + 1,
                              column=mark.column + 1) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, by index
        at = int(exc.position)
        character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
        raise ConfigError(f"invalid YAML: character #x{character:04x} is not allowed ({exc.reason})", file=file,
                          line=text.count("\n", 0, at) + 1, column=at - (text.rfind("\n", 0, at) + 1) + 1) from None
    except yaml.YAMLError as exc:
        raise yaml_error(exc, file=file) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested deeper than Python can read", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph (aliases share nodes) that is cyclic or expands too far.

    Iterative depth-first walk with sizes memoized per node, so it costs one visit per
    distinct node however often aliases repeat them.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_EXPANDED_NODES:
                raise _TooDeep(problem=f"aliases expand to more than {MAX_EXPANDED_NODES:,} values",
                               problem_mark=node.start_mark)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _TooDeep(problem="an alias refers to a node that contains it", problem_mark=node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def read_yaml(path: str | os.PathLike[str], *, what: str) -> tuple[Any, yaml.Node | None]:
    """:func:`read_text` then :func:`load_yaml`."""
    return load_yaml(read_text(path, what=what), file=str(path))


def position(root: yaml.Node | None, loc: tuple[Any, ...], *, at_key: bool = False) -> tuple[int, int]:
    """Line and column (1-based) of the deepest node along ``loc`` (a validator's error path).

    ``at_key`` points at the last key itself rather than its value (for an unknown key).
    (0, 0) when there is no document.
    """
    best = find_node(root, loc, at_key=at_key)
    if best is None:
        return (0, 0)
    return (best.start_mark.line + 1, best.start_mark.column + 1)


def find_node(root: yaml.Node | None, loc: tuple[Any, ...], *, at_key: bool = False) -> yaml.Node | None:
    """The deepest node along ``loc`` (its key node with ``at_key``); what :func:`position` points at."""
    node, best = root, root
    for part in loc:
        found = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    found, best = value, (key if at_key else value)
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            found = best = node.value[part]
        if found is None:
            break
        node = found
    return best


# ---------------------------------------------------------------------------- JSON


def load_json(
    text: str, *, file: str, line: int = 1, error: type[LineageAuditError] = ConfigError
) -> Any:
    """One JSON value; ``line`` is the line ``text`` starts at in its file (NDJSON).

    Syntax errors, and nesting deeper than the decoder can follow, are ``error`` at the
    line and column.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno + line - 1, column=exc.colno) from None
    except RecursionError:
        pass
    where = _bracket_at_depth(text, JSON_REPORT_DEPTH)
    at_line, column = (where[0] + line - 1, where[1]) if where else (line, 0)
    raise error(f"invalid JSON: nested deeper than {JSON_REPORT_DEPTH} levels", file=file,
                line=at_line, column=column)


def _bracket_at_depth(text: str, limit: int) -> tuple[int, int] | None:
    """Line and column (1-based) of the bracket that opens level ``limit + 1``, if any.

    Only run once decoding failed, so its pace (a Python loop) does not matter.
    """
    depth, line, line_start, in_string, escaped = 0, 1, 0, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return line, index - line_start + 1
        elif char in "]}":
            depth -= 1
        elif char == "\n":
            line, line_start = line + 1, index + 1
    return None
