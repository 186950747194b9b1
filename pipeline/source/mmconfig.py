"""PYSKL / MMAction2 configs (mmcv's Python format) read as data, never run.

A config is a Python file of assignments (`model = dict(type='RecognizerGCN', ...)`). mmcv
executes it; skpipe parses it with `ast` and evaluates only literals: numbers, strings, None and
booleans, lists, tuples, dicts, `dict(key=value, ...)`, names bound earlier in the file (or in a
base), unary minus, `+ - * / //` on numbers (and `+` on strings and lists), and f-strings of
such names. `import` lines are skipped (configs import nothing they need for their data);
anything else (a call, an attribute, a comprehension, a lambda) is refused in one line naming
its line, before anything of the file is used. `_base_` files are resolved relative to the file
naming them, merged as mmcv merges them (a child's dict keys override, `_delete_=True`
replaces), and bounded: at most MAX_FILES files, each at most MAX_BYTES, no loop, none outside
the tree MAX_UP folders above the config.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from pipeline import SkpipeError

MAX_BYTES = 1 << 20  # a real config is a few KB
MAX_FILES = 16  # a config and its bases
MAX_UP = 3  # bases may sit up to three folders above the config (MMAction2: ../../_base_/)
MAX_NODES = 200_000
MAX_DEPTH = 40  # nesting of containers and expressions
MAX_VALUE = 10**9  # numbers a config may hold or compute
MAX_TEXT = 1 << 16  # characters of one computed string, items of one computed list
MAX_ITEMS = 100_000  # containers and values in one bound name, shared parts counted each time used

_NUMBER_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b}


class ConfigError(SkpipeError):
    """A config that is not data (the message names the file and line)."""


def read_config(path: Path) -> dict[str, Any]:
    """The names a config binds (its bases merged under it), as plain Python data."""
    path = Path(path)
    root = path.resolve().parent
    for _ in range(MAX_UP):
        root = root.parent
    return _read(path, root, [], [0])


def _read(path: Path, root: Path, chain: list[Path], count: list[int]) -> dict[str, Any]:
    real = _checked_file(path, root, chain)
    count[0] += 1
    if count[0] > MAX_FILES:
        raise ConfigError(f"{path}: more than {MAX_FILES} config files in its _base_ chain")
    try:
        text = real.read_bytes()[: MAX_BYTES + 1].decode("utf-8")
        tree = ast.parse(text, filename=str(path))
    except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError, MemoryError) as e:
        line = getattr(e, "lineno", None)
        raise ConfigError(f"{path}{f':{line}' if line else ''}: not a readable Python config") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ConfigError(f"{path}: larger than any config")
    own = _Evaluator(path).module(tree)
    bases = own.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must name config files")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, _read(real.parent / base, root, [*chain, real], count))
    return merge(merged, own)


def _checked_file(path: Path, root: Path, chain: list[Path]) -> Path:
    """The regular file `path` names, inside `root`, not already in the chain."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ConfigError(f"{path}: no such config file") from None
    if real in chain:
        raise ConfigError(f"{path}: its _base_ chain loops back to it")
    if chain and not real.is_relative_to(root):
        raise ConfigError(f"{path}: a _base_ outside the config's tree ({MAX_UP} folders up) is refused")
    if not real.is_file():
        raise ConfigError(f"{path}: not a regular file")
    if real.suffix != ".py":
        raise ConfigError(f"{path}: a config is a .py file")
    if real.stat().st_size > MAX_BYTES:
        raise ConfigError(f"{path}: larger than any config ({MAX_BYTES >> 20} MB)")
    return real


def merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """mmcv's merge: the child's keys over the base's, recursively into dicts, unless the
    child's dict says `_delete_=True`."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and value.get("_delete_") is True:
            out[key] = {k: v for k, v in value.items() if k != "_delete_"}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class _Evaluator:
    """Evaluates the literal subset of Python a config may use; refuses the rest by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: dict[str, Any] = {}

    def refuse(self, node: ast.AST, what: str) -> ConfigError:
        return ConfigError(f"{self.path}:{getattr(node, 'lineno', '?')}: {what}: a config is read as "
                           "data, never run (literals, dict(...), lists and names only)")

    def module(self, tree: ast.Module) -> dict[str, Any]:
        for stmt in tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                continue
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring
            if not isinstance(stmt, ast.Assign | ast.AnnAssign) or stmt.value is None:
                raise self.refuse(stmt, f"a {type(stmt).__name__} statement")
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            value = self.value(stmt.value, 0)
            self.measure(stmt, value)
            for target in targets:
                if not isinstance(target, ast.Name):
                    raise self.refuse(stmt, "an assignment to something other than a name")
                self.names[target.id] = value
        return self.names

    def measure(self, node: ast.AST, value: Any) -> None:
        """Refuses a value too deep or too large once unfolded. Names let a config share one dict
        in many places (a 40-line DAG unfolds to 2^40 dicts), and merging and writing unfold it."""
        memo: dict[int, tuple[int, int]] = {}

        def size(v: Any) -> tuple[int, int]:  # (depth, items) of the unfolded tree
            if not isinstance(v, dict | list | tuple):
                return 0, 1
            if id(v) not in memo:
                parts = [size(x) for x in (v.values() if isinstance(v, dict) else v)]
                memo[id(v)] = (1 + max((d for d, _ in parts), default=0),
                               min(MAX_ITEMS + 1, 1 + sum(n for _, n in parts)))
            return memo[id(v)]

        depth, items = size(value)  # depth <= MAX_DEPTH per expression, so size() recurses a bounded depth
        if depth > MAX_DEPTH:
            raise self.refuse(node, f"a value nested deeper than {MAX_DEPTH} (through names)")
        if items > MAX_ITEMS:
            raise self.refuse(node, f"a value of more than {MAX_ITEMS:,} items once its names are unfolded")

    def value(self, node: ast.AST, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.refuse(node, "nesting deeper than any config")
        d = depth + 1
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int | float) and not isinstance(node.value, bool):
                return self.number(node, node.value)
            if node.value is None or isinstance(node.value, str | bool):
                return node.value
            raise self.refuse(node, f"a {type(node.value).__name__} constant")
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.value(e, d) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise self.refuse(node, "a ** in a dict")
            return {self.key(k, d): self.value(v, d) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, ast.Call):
            return self.dict_call(node, d)
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in self.names:
                raise self.refuse(node, f"the name {node.id!r} before it is bound")
            return self.names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = self.value(node.operand, d)
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise self.refuse(node, "a sign on something other than a number")
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            return self.binop(node, d)
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node, d)
        raise self.refuse(node, f"a {type(node).__name__} expression")

    def key(self, node: ast.AST | None, depth: int) -> Any:
        k = self.value(node, depth) if node is not None else None
        if not isinstance(k, str | int | float | bool | tuple) or k is None:
            raise self.refuse(node or ast.Constant(None), "a dict key that is not a string or number")
        return k

    def number(self, node: ast.AST, v: float) -> float:
        if abs(v) > MAX_VALUE:
            raise self.refuse(node, f"a number beyond {MAX_VALUE:.0e}")
        return v

    def dict_call(self, node: ast.Call, depth: int) -> dict[str, Any]:
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict") or node.args:
            what = ast.unparse(node.func)[:40] if isinstance(node.func, ast.AST) else "?"
            raise self.refuse(node, f"a call of {what}(...)")
        out = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise self.refuse(node, "a ** in dict(...)")
            out[kw.arg] = self.value(kw.value, depth)
        return out

    def binop(self, node: ast.BinOp, depth: int) -> Any:
        a, b = self.value(node.left, depth), self.value(node.right, depth)
        op = type(node.op)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        if numbers and op in _NUMBER_OPS:
            if op in (ast.Div, ast.FloorDiv) and b == 0:
                raise self.refuse(node, "a division by zero")
            return self.number(node, _NUMBER_OPS[op](a, b))
        if op is ast.Add and type(a) is type(b) and isinstance(a, str | list | tuple):
            if len(a) + len(b) > MAX_TEXT:
                raise self.refuse(node, "a value longer than any config's")
            return a + b
        raise self.refuse(node, f"a {op.__name__} of {type(a).__name__} and {type(b).__name__}")

    def fstring(self, node: ast.JoinedStr, depth: int) -> str:
        parts = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                parts.append(part.value)
            elif isinstance(part, ast.FormattedValue) and part.conversion == -1 and part.format_spec is None:
                v = self.value(part.value, depth)
                if not isinstance(v, str | int | float) or isinstance(v, bool):
                    raise self.refuse(node, "an f-string of something other than a name's text or number")
                parts.append(str(v))
            else:
                raise self.refuse(node, "an f-string with a format")
        text = "".join(parts)
        if len(text) > MAX_TEXT:
            raise self.refuse(node, "a value longer than any config's")
        return text
