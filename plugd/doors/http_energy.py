"""`GET /api/energy` and `GET /api/energy.csv`: the energy history for scripts and spreadsheets.

Both are read like `/api/status` (the HTTP API's reading rule, passed in) and
take the query parameters of `request_energy`: `period` (minute, hour, day or
month), and optionally `from` and `to` (bucket starts, seconds since 1970).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plugd.doors.api.energy import energy_answer, energy_csv
from plugd.errors import ValidationError

if TYPE_CHECKING:
    from plugd.doors.api import Host

Reader = Callable[[Request], Awaitable[Response | None]]


def _request(request: Request) -> dict[str, Any]:
    """The query as a `request_energy`: numbers where they read as numbers."""
    msg: dict[str, Any] = {}
    for key in ("period", "from", "to"):
        value = request.query_params.get(key)
        if value is None:
            continue
        if key != "period":
            try:
                msg[key] = float(value)
                continue
            except ValueError:
                pass
        msg[key] = value
    return msg


def energy_routes(host: Host, reader: Reader) -> list[Route]:
    """The two routes, under the API's mount; `reader` refuses a caller who may not read."""

    async def answer(request: Request) -> dict[str, Any] | Response:
        refusal = await reader(request)
        if refusal is not None:
            return refusal
        try:
            return await energy_answer(host, _request(request))
        except ValidationError as err:
            return JSONResponse({"error": str(err)}, 400)

    async def as_json(request: Request) -> Response:
        found = await answer(request)
        return found if isinstance(found, Response) else JSONResponse(found)

    async def as_csv(request: Request) -> Response:
        found = await answer(request)
        if isinstance(found, Response):
            return found
        return Response(energy_csv(host, found), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="energy-{found["period"]}.csv"'})

    return [Route("/energy", as_json, methods=["GET"]), Route("/energy.csv", as_csv, methods=["GET"])]


_PARAMETERS = [
    {"name": "period", "in": "query", "required": True,
     "schema": {"enum": ["minute", "hour", "day", "month"]}},
    {"name": "from", "in": "query", "schema": {"type": "number"},
     "description": "The first bucket start wanted, seconds since 1970 (UTC)"},
    {"name": "to", "in": "query", "schema": {"type": "number"},
     "description": "Bucket starts before this, seconds since 1970 (UTC)"},
]

#: The OpenAPI description of the routes, merged into the HTTP API's.
OPENAPI_PATHS: dict[str, Any] = {
    "/api/energy": {"get": {
        "summary": "Energy per minute (48 h), local hour (two years), local day or local month",
        "parameters": _PARAMETERS,
        "responses": {"200": {"description": "buckets: [[start, Wh], ...], oldest first",
                              "content": {"application/json": {}}},
                      "400": {"description": "A bad parameter, named in `error`"},
                      "401": {"description": "Reading needs a token (http.open_reading is off)"}}}},
    "/api/energy.csv": {"get": {
        "summary": "The same as CSV: start (local time), wh, cost",
        "parameters": _PARAMETERS,
        "responses": {"200": {"description": "A header row, then a row per bucket",
                              "content": {"text/csv": {}}},
                      "400": {"description": "A bad parameter, named in `error`"}}}},
}
