"""Partial responses: Google's `fields` parameter (`a,b/c,d(e,f)`, `sheets.properties(sheetId,title)`, `*`).

The mask is parsed into a tree of selected names and applied to the full response; `/` and `.` both step into a
sub-object, parentheses select several names below one, and `*` selects every name at its level.
"""

from __future__ import annotations

from typing import Any

FieldTree = dict[str, "FieldTree | None"]


class FieldMaskError(ValueError):
    """A `fields` value that does not parse."""


def parse_fields(text: str) -> FieldTree:
    """Parse a field mask into a tree; a leaf (None) selects everything below it."""
    tree, pos = _parse_list(text.replace(" ", ""), 0)
    if pos != len(text.replace(" ", "")):
        raise FieldMaskError(f"Invalid field selection {text}")
    return tree


def _parse_list(text: str, pos: int) -> tuple[FieldTree, int]:
    tree: FieldTree = {}
    while True:
        path: list[str] = []
        start = pos
        while True:
            end = pos
            while end < len(text) and text[end] not in ",()/.":
                end += 1
            if end == pos:
                raise FieldMaskError(f"Invalid field selection {text[start:] or text}")
            path.append(text[pos:end])
            pos = end
            if pos < len(text) and text[pos] in "/.":
                pos += 1
                continue
            break
        sub: FieldTree | None = None
        if pos < len(text) and text[pos] == "(":
            sub, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise FieldMaskError(f"Invalid field selection {text}")
            pos += 1
        _merge(tree, path, sub)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return tree, pos


def _merge(tree: FieldTree, path: list[str], sub: FieldTree | None) -> None:
    node = tree
    for name in path[:-1]:
        child = node.get(name, {})
        if child is None:
            return  # already selected whole
        node[name] = child
        node = child
    last = path[-1]
    if sub is None or node.get(last, {}) is None:
        node[last] = None
    else:
        existing = node.get(last) or {}
        for name, value in sub.items():
            _merge(existing, [name], value)
        node[last] = existing


def apply_fields(tree: FieldTree | None, value: Any) -> Any:
    """The parts of `value` the tree selects; lists are filtered element by element."""
    if tree is None:
        return value
    if isinstance(value, list):
        return [apply_fields(tree, item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in tree:
            out[key] = apply_fields(tree[key], item)
        elif "*" in tree:
            out[key] = apply_fields(tree["*"], item)
    return out


def selects(tree: FieldTree | None, *path: str) -> bool:
    """Whether the mask reaches into `path` (e.g. "sheets", "data"): decides if grid data must be built."""
    node: FieldTree | None = tree
    for name in path:
        if node is None:
            return True
        if name in node:
            node = node[name]
        elif "*" in node:
            node = node["*"]
        else:
            return False
    return True
