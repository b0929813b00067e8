"""The checked-in docs/openapi.json is the document the code builds, and it documents every answer."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

import sheetstream
from sheetstream.api import openapi_document, openapi_text

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_checked_in_openapi_matches_the_code() -> None:
    assert CHECKED_IN.exists(), "docs/openapi.json is missing: run `make openapi`"
    assert json.loads(CHECKED_IN.read_text()) == openapi_document(), (
        "docs/openapi.json is out of date: run `make openapi` to refresh it"
    )


def test_openapi_text_is_sorted_and_pretty() -> None:
    text = openapi_text()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_document_names_the_project_and_documents_errors() -> None:
    doc = openapi_document()
    assert doc["info"]["title"] == "sheetstream"
    assert doc["info"]["version"] == sheetstream.__version__
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # replaced by our error shape everywhere
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    sources = {path: ops for path, ops in doc["paths"].items() if path.startswith("/v1/sources")}
    assert len(sources) == 5
    for path, ops in sources.items():
        for method, op in ops.items():
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == error_ref, (method, path)
            if "{source_id}" in path:
                assert op["responses"]["404"]["content"]["application/json"]["schema"] == error_ref, (method, path)
    assert doc["paths"]["/v1/sources/{source_id}/changes"]["get"]["operationId"] == "get_changes"


async def test_served_document_is_the_same(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi_document()
    assert (await client.get("/docs")).status_code == 200
