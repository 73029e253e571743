"""Building blocks of the OpenAPI document shared by its parts (the openapi_* modules)."""

from __future__ import annotations

from typing import Any

from gateway.validation import DATE as DATE_PATTERN

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(code): PROBLEM for code in codes}


def _op(
    summary: str,
    ok: dict[str, Any],
    *problems: int,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    idempotent: bool = False,
    op_id: str = "",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "operationId": op_id, "responses": {**ok}}
    op["responses"].update(_problems(401, 403, 404, 429, 500, *problems))
    parameters = list(params or [])
    if idempotent:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    return op


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


DATE = {"type": "string", "format": "date", "pattern": f"^{DATE_PATTERN}$"}
TIMESTAMP = {"type": "string", "format": "date-time"}
