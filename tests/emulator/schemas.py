"""Google's discovery documents (bundled with google-api-python-client) as JSON Schemas, to check response shapes.

Every object schema forbids properties the document does not declare, so a misspelt or invented field fails.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@cache
def _document(api: str) -> dict[str, Any]:
    name = {"sheets": "sheets.v4.json", "drive": "drive.v3.json"}[api]
    path = resources.files("googleapiclient") / "discovery_cache" / "documents" / name
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _convert(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"$ref": f"#/definitions/{schema['$ref']}"}
    kind = schema.get("type")
    if kind == "any" or kind is None:
        return {}
    if kind == "object":
        out: dict[str, Any] = {"type": "object"}
        if "properties" in schema:
            out["properties"] = {k: _convert(v) for k, v in schema["properties"].items()}
        extra = schema.get("additionalProperties")
        out["additionalProperties"] = _convert(extra) if extra else "properties" not in schema
        return out
    if kind == "array":
        return {"type": "array", "items": _convert(schema.get("items", {}))}
    if kind == "string":
        return {"type": "string"}
    if kind == "integer":
        return {"type": "integer"}
    if kind == "number":
        return {"type": "number"}
    if kind == "boolean":
        return {"type": "boolean"}
    raise ValueError(f"unknown discovery type {kind}")


@cache
def _definitions(api: str) -> dict[str, Any]:
    return {name: _convert(s) for name, s in _document(api)["schemas"].items()}


@cache
def _validator(api: str, schema: str) -> jsonschema.Draft7Validator:
    # Built once: checking the (large) schema itself on every call would dominate the tests' time.
    return jsonschema.Draft7Validator({"$ref": f"#/definitions/{schema}", "definitions": _definitions(api)})


def check(api: str, schema: str, value: Any) -> None:
    """Raise jsonschema.ValidationError unless `value` fits the discovery document's schema `schema`."""
    _validator(api, schema).validate(value)
