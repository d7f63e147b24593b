"""The HTTP API for scripts and Prometheus, over real HTTP to a daemon: reading, the relay with
tokens, cookies from other origins, bodies, tokens made and revoked with plugctl, the metrics
read by Prometheus' own text parser, and the OpenAPI description."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

from conftest import Client
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from plugd import ctl
from plugd.core.model import ThingId
from plugd.doors.limits import PER_ADDRESS
from plugd.service.daemon import Daemon
from tests.support import until


def _call(port: int, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


async def call(d: Daemon, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """One HTTP request, off the event loop the daemon runs on."""
    return await asyncio.to_thread(_call, d.web.port, method, path, body, headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_status_is_open_like_reading(daemon):
    status, headers, body = await call(daemon, "GET", "/api/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert answer["relay"] is False and answer["nodeId"] == daemon.plug.node_id
    assert set(answer) >= {"power", "current", "energyToday", "energyTotal", "tripped", "sensorFault"}


async def test_with_reading_closed_status_and_metrics_need_a_token(make_daemon):
    d = await make_daemon(**{"http.open_reading": False})
    for path in ["/api/status", "/metrics"]:
        status, headers, _ = await call(d, "GET", path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert (await call(d, "GET", path, headers=bearer(d.auth.cli_token)))[0] == 200


async def test_the_relay_switches_with_a_token_and_never_without(daemon):
    assert (await call(daemon, "POST", "/api/relay", {"state": "on"}))[0] == 401
    assert (await call(daemon, "POST", "/api/relay", {"state": "on"}, bearer("wrong")))[0] == 401
    assert (await call(daemon, "POST", "/api/relay", {"state": "on"},
                       {"Authorization": "Basic eDp5"}))[0] == 401
    assert daemon.plug.things[ThingId.PLUG].value == 0.0
    status, _, body = await call(daemon, "POST", "/api/relay", {"state": "toggle"},
                                 bearer(daemon.auth.cli_token))
    assert status == 200 and json.loads(body)["relay"] is True
    assert daemon.plug.things[ThingId.PLUG].value == 1.0
    relay_events = [e for e in daemon.plug.events if e.kind == "relay"]
    assert relay_events[-1].cause.startswith("http cli-token at 127.0.0.1")


async def test_bad_bodies_are_refused_by_name_and_change_nothing(daemon):
    token = bearer(daemon.auth.cli_token)
    cases = [({"state": "up"}, 400, "state"), ([1], 400, "object"), (b"{", 400, "JSON"),
             (b"x" * 5000, 413, "larger"), ({"nostate": 1}, 400, "state")]
    for body, code, word in cases:
        status, _, answer = await call(daemon, "POST", "/api/relay", body, token)
        assert status == code and word in json.loads(answer)["error"], (body, answer)
    status, _, _ = await call(daemon, "POST", "/api/relay", b'{"state":"on"}',
                              {**token, "Content-Type": "text/plain"})
    assert status == 415
    assert daemon.plug.things[ThingId.PLUG].value == 0.0
    assert (await call(daemon, "GET", "/api/relay"))[0] == 405


async def test_failed_tokens_count_like_failed_logins(daemon):
    for _ in range(PER_ADDRESS.free):
        assert (await call(daemon, "POST", "/api/relay", {"state": "on"}, bearer("guess")))[0] == 401
    status, headers, _ = await call(daemon, "POST", "/api/relay", {"state": "on"},
                                    bearer(daemon.auth.cli_token))
    assert status == 429 and int(headers["Retry-After"]) > 0  # even the right one waits now
    assert daemon.plug.things[ThingId.PLUG].value == 0.0


async def session_cookie(d: Daemon) -> str:
    """A logged-in page's cookie, got as the page gets it."""
    async with connect(f"ws://127.0.0.1:{d.web.port}/ws") as ws:
        ticket = (await Client(ws).ask({"command": "login", "token": d.auth.cli_token}))["ticket"]
    _, headers, _ = await call(d, "GET", f"/session?ticket={ticket}")
    return headers["Set-Cookie"].split(";")[0]


async def test_a_session_cookie_works_only_from_the_plugs_own_pages(daemon):
    cookie = await session_cookie(daemon)
    port = daemon.web.port
    for origin in ["http://evil.example", f"https://127.0.0.1:{port}", None]:
        headers = {"Cookie": cookie, **({"Origin": origin} if origin else {})}
        status, _, body = await call(daemon, "POST", "/api/relay", {"state": "on"}, headers)
        assert status == 403 and "Bearer" in json.loads(body)["error"], origin
    assert daemon.plug.things[ThingId.PLUG].value == 0.0
    status, _, _ = await call(daemon, "POST", "/api/relay", {"state": "on"},
                              {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and daemon.plug.things[ThingId.PLUG].value == 1.0


def plugctl(d: Daemon, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = ctl.main(["--port", str(d.web.port), "--state-dir", str(d.plug.state.path), *args])
    return code, out.getvalue()


async def test_tokens_are_made_listed_and_revoked_with_plugctl_and_kept_hashed(daemon):
    code, out = await asyncio.to_thread(plugctl, daemon, "token", "add", "grafana")
    assert code == 0, out
    token = out.split()[0]
    auth_file = (daemon.plug.state.path / "auth.json").read_text()
    assert token not in auth_file and "grafana" in auth_file
    status, _, _ = await call(daemon, "POST", "/api/relay", {"state": "on"}, bearer(token))
    assert status == 200 and [e for e in daemon.plug.events if e.kind == "relay"][-1].cause \
        .startswith("http grafana at 127.0.0.1")
    code, out = await asyncio.to_thread(plugctl, daemon, "token", "list")
    assert code == 0 and "grafana" in out and token not in out
    code, out = await asyncio.to_thread(plugctl, daemon, "token", "add", "grafana")
    assert code == 1 and "exists" in out
    code, out = await asyncio.to_thread(plugctl, daemon, "token", "add", "bad name!")
    assert code == 1 and "name" in out
    code, out = await asyncio.to_thread(plugctl, daemon, "token", "revoke", "grafana")
    assert code == 0, out
    assert (await call(daemon, "POST", "/api/relay", {"state": "off"}, bearer(token)))[0] == 401
    code, out = await asyncio.to_thread(plugctl, daemon, "token", "revoke", "grafana")
    assert code == 1 and "no token" in out


async def test_tokens_survive_a_restart_and_a_password_change(make_daemon):
    d = await make_daemon()
    async with connect(f"ws://127.0.0.1:{d.web.port}/ws") as ws:
        c = Client(ws)
        await c.ask({"command": "login", "token": d.auth.cli_token})
        token = (await c.ask({"command": "add_token", "name": "script"}))["token"]
        old = (d.plug.state.path / "initial-password").read_text().strip()
        assert (await c.ask({"command": "change_password", "old": old, "new": "a-new-password"}))["success"]
    await d.stop()
    again = await make_daemon()
    assert (await call(again, "POST", "/api/relay", {"state": "on"}, bearer(token)))[0] == 200


async def test_metrics_read_by_prometheus_parser(daemon, client):
    await client.ask({"command": "switch", "state": "on"})
    status, headers, body = await call(daemon, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["plugd_relay_on"].type == "gauge"
    assert families["plugd_relay_on"].samples[0].value == 1.0
    energy = families["plugd_energy_watt_hours"]
    assert energy.type == "counter" and energy.samples[0].name == "plugd_energy_watt_hours_total"
    assert families["plugd_protection_trips"].type == "counter"
    nodes = {s.labels["state"]: s.value for s in families["plugd_mesh_nodes"].samples}
    assert set(nodes) == {"online", "offline"}
    results = {s.labels["result"] for s in families["plugd_mesh_datagrams"].samples}
    assert {"received", "invalid"} <= results
    assert families["plugd_websocket_clients"].samples[0].value >= 1
    assert "process_resident_memory_bytes" in families or "process_resident_memory" in families
    await until(lambda: not daemon.plug.invalid, "a reading of power and current")
    _, _, body = await call(daemon, "GET", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    power = families["plugd_power_watts"]
    assert power.type == "gauge" and power.samples[0].value >= 0.0


async def test_the_openapi_description_names_every_route(daemon):
    status, _, body = await call(daemon, "GET", "/api/openapi.json")
    spec = json.loads(body)
    assert status == 200 and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/api/status", "/api/relay", "/metrics", "/api/energy",
                                  "/api/energy.csv"}
    assert spec["paths"]["/api/relay"]["post"]["security"] == [{"token": []}]


async def test_the_grafana_dashboard_asks_only_for_metrics_plugd_serves(daemon, client):
    await client.ask({"command": "switch", "state": "on"})
    await until(lambda: not daemon.plug.invalid, "a reading of power and current")
    _, _, body = await call(daemon, "GET", "/metrics")
    served = {sample.name for family in text_string_to_metric_families(body.decode())
              for sample in family.samples}
    dashboard = json.loads((Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text())
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"\b((?:plugd|process)_[a-z_]+)\{", target["expr"])}
    assert asked and asked <= served, asked - served
