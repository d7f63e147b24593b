"""The HTTP API for scripts and monitoring: `/api/status`, `/api/relay`, `/metrics`, and the
OpenAPI description of it at `/api/openapi.json`.

Reading follows the page's rule (open unless `http.open_reading` is off, then
a token or a session is needed). A change needs `Authorization: Bearer
<token>`: the cli-token or an API token (`plugctl token add NAME`); a token is
counted like a login, so guessing one is as slow as guessing the password. The
page's session cookie also works, but only on a request its own pages made (the
`Origin` is the plug's): a browser sends the cookie along with any site's
request, so a cookie on a request from another origin is refused with 403.
A relay change goes through the WebSocket API's own `switch`, as a person's
command by HTTP (`Cause("http", ...)`), so the relay's authority table applies.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from plugd.core.model import ThingId
from plugd.core.plug import Cause
from plugd.doors.api import Api
from plugd.doors.hosts import Names
from plugd.doors.http_energy import OPENAPI_PATHS as ENERGY_PATHS
from plugd.doors.http_energy import energy_routes
from plugd.doors.web import COOKIE

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from plugd.doors.api import Host

#: The largest request body taken (a relay command is a few bytes).
MAX_BODY = 4096
#: Seconds a client has to send its body.
BODY_TIMEOUT = 10.0
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HttpCaller(Api):
    """A script's request, run through the WebSocket API's commands as a person's by HTTP."""

    @property
    def cause(self) -> Cause:
        """Recorded as an HTTP command, naming the token and the address."""
        return Cause("http", self.who)


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=headers or None)


class HttpApi:
    """The routes; `names` tells which origins are the plug's own pages."""

    def __init__(self, host: Host, names: Callable[[], Names]) -> None:
        self.host = host
        self.names = names
        self._registry: CollectorRegistry | None = None

    def registry(self) -> CollectorRegistry:
        """The metrics, made at the first scrape: prometheus_client holds 1.3 MB resident, which
        a plug nobody scrapes never needs."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry
            from prometheus_client.process_collector import ProcessCollector

            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_PlugCollector(self.host))
            ProcessCollector(registry=self._registry)
        return self._registry

    def routes(self) -> list[BaseRoute]:
        """What the web server serves for the API: under one mount, so that a wrong method on
        an API path is a 405, not a file that is not found."""
        return [Mount("/api", routes=[Route("/status", self._status, methods=["GET"]),
                                      Route("/relay", self._relay, methods=["POST"]),
                                      Route("/openapi.json", self._openapi, methods=["GET"]),
                                      *energy_routes(self.host, self._reader)]),
                Route("/metrics", self._metrics, methods=["GET"])]

    # --- who is asking ------------------------------------------------------------

    async def _caller(self, request: Request) -> tuple[str | None, Response | None]:
        """(who, None) for a good token or a same-origin session; (None, None) for nobody;
        (None, refusal) for a bad token, a locked-out address or a cross-site cookie."""
        auth, plug = self.host.auth, self.host.plug
        address = request.client.host if request.client else "?"
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None, _error(401, "expected Authorization: Bearer <token>",
                                    **{"WWW-Authenticate": "Bearer"})
            wait = auth.begin_login(address, plug.monotonic())  # counted before the check
            if wait > 0:
                return None, _error(429, f"too many failed attempts: wait {math.ceil(wait)} s",
                                    **{"Retry-After": str(math.ceil(wait))})
            who = auth.check_bearer(token.strip())
            auth.end_login(address, who is not None, plug.monotonic())
            if who is None:
                plug.record("auth", "failed HTTP token", Cause("http", address), "login")
                return None, _error(401, "the token is not known (or was revoked)",
                                    **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return f"{who} at {address}", None
        session = request.cookies.get(COOKIE)
        if session and auth.session_valid(session, plug.wall()):
            origin = request.headers.get("origin")
            server = request.scope.get("server")
            if request.method not in ("GET", "HEAD") and (origin is None or self.names().origin_problem(
                    origin, request.url.scheme, server[1] if server else None) is not None):
                return None, _error(403, "a session cookie is taken only from the plug's own "
                                         "pages: scripts use Authorization: Bearer <token>")
            return f"session at {address}", None
        return None, None

    async def _reader(self, request: Request) -> Response | None:
        """None when the caller may read; else the refusal."""
        who, refusal = await self._caller(request)
        if refusal is not None or who is not None or self.host.config.http.open_reading:
            return refusal
        return _error(401, "reading needs a token (http.open_reading is off)",
                      **{"WWW-Authenticate": "Bearer"})

    # --- the routes -----------------------------------------------------------------

    async def _status(self, request: Request) -> Response:
        refusal = await self._reader(request)
        return refusal or JSONResponse(self.summary())

    def summary(self) -> dict[str, Any]:
        """The state a script wants: the relay, the readings, the faults."""
        plug, status = self.host.plug, self.host.status()
        valid = status["valid"]
        return {"relay": status["relay"], "override": status["override"],
                "power": status["power"] if valid[str(ThingId.POWER)] else None,
                "current": status["current"] if valid[str(ThingId.CURRENT)] else None,
                "energyToday": plug.things[ThingId.ENERGY_TODAY].value,
                "energyTotal": plug.things[ThingId.ENERGY_TOTAL].value * 1000.0,
                "tripped": status["tripped"], "relayFault": status["relayFault"],
                "autoOffAt": status["autoOffAt"],
                "sensorFault": (status["meter"] or {}).get("fault"),
                "nodeId": plug.node_id, "nodeName": plug.node_name}

    async def _relay(self, request: Request) -> Response:
        who, refusal = await self._caller(request)
        if refusal is not None:
            return refusal
        if who is None:
            return _error(401, "a change needs Authorization: Bearer <token> (plugctl token add "
                               "NAME makes one)", **{"WWW-Authenticate": "Bearer"})
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "expected Content-Type: application/json")
        body = await _body(request)
        if isinstance(body, Response):
            return body
        try:
            msg = json.loads(body)
        except (ValueError, RecursionError):
            return _error(400, "the body is not valid JSON")
        if not isinstance(msg, dict):
            return _error(400, 'expected an object like {"state": "on"}')
        caller = HttpCaller(self.host, who, trusted=True)  # the token was checked above
        command = {"command": "switch", "state": msg.get("state")}
        if "for" in msg:
            command["for"] = msg["for"]
        answer = await caller.handle(json.dumps(command))
        if answer["command"] == "error":
            return _error(400 if "state:" in answer["error"] else 409, answer["error"])
        return JSONResponse(self.summary())

    async def _openapi(self, request: Request) -> Response:
        refusal = await self._reader(request)
        return refusal or JSONResponse(OPENAPI)

    async def _metrics(self, request: Request) -> Response:
        refusal = await self._reader(request)
        if refusal:
            return refusal
        from prometheus_client import generate_latest

        return Response(generate_latest(self.registry()), media_type=METRICS_TYPE)


async def _body(request: Request) -> bytes | Response:
    """The body, at most MAX_BODY bytes, sent within BODY_TIMEOUT; or the refusal."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        return _error(413, f"the body is larger than {MAX_BODY} bytes")
    body = b""
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return _error(413, f"the body is larger than {MAX_BODY} bytes")
    except TimeoutError:
        return _error(408, f"the body did not arrive within {BODY_TIMEOUT:g} s",
                      Connection="close")
    return body


class _PlugCollector:
    """The plug's figures, read when Prometheus scrapes (nothing is kept between scrapes)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def collect(self) -> list[Metric]:
        """One scrape's metrics, named and typed as Prometheus expects."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        host, plug = self.host, self.host.plug
        status = host.status()
        valid = status["valid"]
        metrics: list[Metric] = []

        def gauge(name: str, doc: str, value: float | None) -> None:
            if value is not None:
                metrics.append(GaugeMetricFamily(name, doc, value=value))
        gauge("plugd_relay_on", "1 when the relay is on.", float(status["relay"]))
        gauge("plugd_override", "1 when a person pinned the relay (recipes leave it alone).",
              float(status["override"]))
        gauge("plugd_power_watts", "Power drawn through the plug.",
              status["power"] if valid[str(ThingId.POWER)] else None)
        gauge("plugd_current_amperes", "RMS current through the plug.",
              status["current"] if valid[str(ThingId.CURRENT)] else None)
        gauge("plugd_energy_today_watt_hours", "Energy since local midnight.",
              plug.things[ThingId.ENERGY_TODAY].value)
        metrics.append(CounterMetricFamily(
            "plugd_energy_watt_hours", "Energy through the plug since it was set up.",
            value=plug.things[ThingId.ENERGY_TOTAL].value * 1000.0))
        gauge("plugd_protection_tripped", "1 while the overload protection holds the relay off.",
              float(bool(status["tripped"])))
        meter = status["meter"] or {}
        metrics.append(CounterMetricFamily(
            "plugd_protection_trips", "Overload trips since the daemon started.",
            value=float(plug.core.trips)))
        gauge("plugd_sensor_fault", "1 while the current sensor cannot be read.",
              float(bool(meter.get("fault"))))
        nodes = GaugeMetricFamily("plugd_mesh_nodes", "Nodes of the mesh known to this plug.",
                                  labels=["state"])
        online = status["nodesOnline"]
        nodes.add_metric(["online"], online)
        nodes.add_metric(["offline"], status["nodesKnown"] - online)
        metrics.append(nodes)
        datagrams = CounterMetricFamily("plugd_mesh_datagrams", "Datagrams heard, by outcome.",
                                        labels=["result"])
        for result, count in status["counters"].items():
            datagrams.add_metric([result], count)
        metrics.append(datagrams)
        gauge("plugd_websocket_clients", "Pages and scripts connected over WebSocket.",
              status["clients"])
        http = status.get("http", {})
        gauge("plugd_http_connections", "HTTP and WebSocket connections open.",
              http.get("connections"))
        metrics.append(CounterMetricFamily(
            "plugd_http_connections_refused", "Connections refused as over a cap.",
            value=http.get("connectionsRefused", 0)))
        gauge("plugd_uptime_seconds", "Seconds since the daemon started.", status["uptime"])
        return metrics


#: The API's description, served at /api/openapi.json.
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "plugd HTTP API", "version": "1",
             "description": "The plug's state and its relay, for scripts. Changes need "
                            "`Authorization: Bearer <token>` (`plugctl token add NAME`)."},
    "components": {
        "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Status": {"type": "object", "properties": {
                "relay": {"type": "boolean"}, "override": {"type": "boolean"},
                "power": {"type": ["number", "null"], "description": "W; null without a reading"},
                "current": {"type": ["number", "null"], "description": "A"},
                "energyToday": {"type": "number", "description": "Wh since local midnight"},
                "energyTotal": {"type": "number", "description": "Wh since set-up"},
                "tripped": {"type": ["string", "null"]}, "relayFault": {"type": ["string", "null"]},
                "autoOffAt": {"type": ["number", "null"],
                              "description": "when the auto-off switches the relay off, "
                                             "seconds since 1970"},
                "sensorFault": {"type": ["string", "null"]}, "nodeId": {"type": "integer"},
                "nodeName": {"type": "string"}}},
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
        },
    },
    "paths": {
        "/api/status": {"get": {
            "summary": "The relay, the readings and the faults",
            "responses": {"200": {"description": "The state", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
                "401": {"description": "Reading needs a token (http.open_reading is off)"}}}},
        "/api/relay": {"post": {
            "summary": "Switch the relay", "security": [{"token": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["state"],
                "properties": {"state": {"enum": ["on", "off", "toggle"]},
                               "for": {"type": "number", "exclusiveMinimum": 0,
                                       "description": "seconds on, then off by itself"}}}}}},
            "responses": {
                "200": {"description": "Switched: the new state", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
                "400": {"description": "A bad body, named in `error`"},
                "401": {"description": "No token, or a token not known"},
                "403": {"description": "A session cookie on a request from another origin"},
                "409": {"description": "Refused by the relay's rules, or not saved"},
                "413": {"description": "The body is too large"},
                "415": {"description": "Not JSON"},
                "429": {"description": "Too many failed tokens from this address"}}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text exposition format 0.0.4)",
            "responses": {"200": {"description": "The metrics",
                                  "content": {"text/plain": {}}}}}},
    },
}
OPENAPI["paths"].update(ENERGY_PATHS)
