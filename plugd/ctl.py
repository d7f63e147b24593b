"""`plugctl`: a command line for a running plugd, over its WebSocket API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from plugd.doors.auth import CLI_TOKEN_FILE
from plugd.service.config import StateConfig, load, simulate_defaults
from plugd.errors import ConfigError
from plugd.core.model import Relation

RELATION_WORDS = {Relation.EQUALS: "is", Relation.NOT_EQUALS: "is not",
                  Relation.BIGGER_THAN: "is above", Relation.SMALLER_THAN: "is below",
                  Relation.NOT_BIGGER_THAN: "is at most", Relation.NOT_SMALLER_THAN: "is at least"}

DEFAULT_STATE = StateConfig().dir
#: subcommand -> (request, help)
REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "status": ({"command": "request_status"}, "show the relay, power and mesh"),
    "on": ({"command": "switch", "state": "on"}, "switch the relay on"),
    "off": ({"command": "switch", "state": "off"}, "switch the relay off"),
    "toggle": ({"command": "switch", "state": "toggle"}, "switch the relay over"),
    "nodes": ({"command": "request_nodes"}, "list the nodes on the mesh"),
    "recipes": ({"command": "request_recipes"}, "list the recipes in evaluation order"),
}


def default_url() -> str:
    if os.environ.get("PLUGD_URL"):
        return os.environ["PLUGD_URL"]
    try:
        port = load(None).http.port
    except ConfigError:
        port = 80
    return f"ws://localhost:{port}/ws"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plugctl", description="Talk to a running plugd.")
    p.add_argument("--url", help="the daemon's WebSocket (default $PLUGD_URL, else "
                                 "ws://localhost:<http.port of /etc/plugd/plugd.toml>/ws)")
    p.add_argument("--port", type=int, help="shorthand for --url ws://localhost:PORT/ws")
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="log in with this token file (default $PLUGD_TOKEN_FILE, else the "
                        "daemon's cli-token in /var/lib/plugd or the --simulate state directory)")
    sub = p.add_subparsers(dest="action", required=True, metavar="COMMAND")
    for name, (_, text) in REQUESTS.items():
        sub.add_parser(name, help=text)
    calibrate = sub.add_parser(
        "calibrate", help="calibrate the meter: zero (relay off), power W or current A "
                          "(relay on, known load), voltage V, or reset")
    calibrate.add_argument("what", choices=["zero", "power", "current", "voltage", "reset"])
    calibrate.add_argument("value", type=float, nargs="?", help="the known value")
    load = sub.add_parser("load", help="under --simulate: the simulated load in W")
    load.add_argument("watts", type=float)
    fault = sub.add_parser("fault", help="under --simulate: break a chip (adc nack, gone, garbage, "
                                         "stuck or none; display on or off)")
    fault.add_argument("chip", choices=["adc", "display"])
    fault.add_argument("fault", choices=["nack", "gone", "garbage", "stuck", "none", "on", "off"])
    return p


def request_for(args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "calibrate":
        request: dict[str, Any] = {"command": "calibrate", "what": args.what}
        if args.value is not None:
            request["value"] = args.value
        return request
    if args.action == "load":
        return {"command": "simulate_load", "watts": args.watts}
    if args.action == "fault":
        fault = {"none": None, "on": True, "off": False}.get(args.fault, args.fault)
        return {"command": "simulate_fault", "chip": args.chip, "fault": fault}
    return REQUESTS[args.action][0]


def token_files(given: Path | None) -> list[Path]:
    if given is not None:
        return [given]
    if os.environ.get("PLUGD_TOKEN_FILE"):
        return [Path(os.environ["PLUGD_TOKEN_FILE"])]
    return [Path(DEFAULT_STATE) / CLI_TOKEN_FILE,
            Path(simulate_defaults()["state.dir"]) / CLI_TOKEN_FILE]


def read_token(files: list[Path]) -> str | None:
    for path in files:
        try:
            return path.read_text().strip()
        except OSError:
            continue
    return None


def ask(url: str, request: dict[str, Any], timeout: float, token: str | None) -> dict[str, Any]:
    """Send one request (logged in first when there is a token); return its answer."""
    with connect(url, open_timeout=timeout, close_timeout=1) as ws:
        def answer_to(message: dict[str, Any]) -> dict[str, Any]:
            expected = "response_" + message["command"].removeprefix("request_")
            ws.send(json.dumps(message))
            while True:  # skip the values the daemon pushes meanwhile
                answer = json.loads(ws.recv(timeout=timeout))
                if answer.get("command") in (expected, "error"):
                    return answer

        if token is not None:
            login = answer_to({"command": "login", "token": token})
            if not login.get("success"):
                return {"command": "error", "error": f"login with the token file failed: "
                                                     f"{login.get('error')}"}
        return answer_to(request)


def show(action: str, answer: dict[str, Any]) -> str:
    if action == "status":
        counters = answer["counters"]
        return "\n".join([
            f"node     {answer['nodeName']} (id {answer['nodeId']})"
            + (", simulated hardware" if answer["simulate"] else ""),
            f"relay    {'on' if answer['relay'] else 'off'}"
            + (" (override: recipes do not switch it)" if answer["override"] else ""),
            f"power    {_measured(answer, 'power', 'W')}, {_measured(answer, 'current', 'A')}, "
            f"{answer['energyToday']:.2f} Wh today"
            + (f"; PROTECTION TRIPPED: {answer['tripped']}" if answer["tripped"] else ""),
            f"meter    {_meter(answer['meter'])}",
            f"mesh     {answer['nodesOnline']} nodes online, {answer['nodesKnown']} known; "
            f"UDP {answer['udpPort']} to {', '.join(answer['broadcast']) or 'no interface'}",
            f"packets  {counters['received']} received, {counters['invalid']} invalid, "
            f"{counters['dropped_full']} dropped (table full), {counters['sent']} sent",
            f"recipes  {answer['recipes']}",
            f"display  {answer['display']!r}" if answer["display"] is not None else "display  none",
            *(f"FAULT    {what}: {answer[key]}" for key, what in
              (("relayFault", "the relay does not switch"), ("displayFault", "the display fails"))
              if answer.get(key)),
            f"uptime   {answer['uptime']:.0f} s, plugd {answer['version']}",
        ])
    if action in ("on", "off", "toggle"):
        return f"relay {'on' if answer['relay'] else 'off'}"
    if action == "calibrate":
        cal = answer["calibration"]
        zero = "tracked" if cal["zero_volts"] is None else f"{cal['zero_volts']:.4f} V"
        return (f"calibration: current gain {cal['current_gain']:.4f}, {cal['voltage']:g} V, "
                f"power factor {cal['power_factor']:g}, zero {zero}")
    if action == "load":
        return f"simulated load {answer['watts']:g} W"
    if action == "fault":
        return f"simulated {answer['chip']} fault: {answer['fault']}"
    if action == "nodes":
        rows = [("ID", "NAME", "STATE", "ADDRESS", "SEEN", "THINGS")]
        for node in answer["nodes"]:
            state = "self" if node.get("self") else ("online" if node["online"] else "offline")
            seen = "" if node.get("age") is None else f"{node['age']:.0f} s ago"
            things = " ".join(f"{t['id']}={t.get('text') or format(t['value'], 'g')}"
                              for t in node.get("things", []))
            rows.append((str(node["id"]), node["name"], state, node.get("address", ""), seen, things))
        return table(rows)
    if action == "recipes":
        rows = [("ID", "NAME", "IF", "THEN", "MATCHES")]
        for r in answer["recipes"]:
            condition = (f"node {r['sourceNodeId']} thing {r['sourceThingId']} "
                         f"{RELATION_WORDS[Relation(r['relation'])]} {r['targetValue']:g}")
            seen = "never seen" if r["seen"] is None else f"{r['seen']:g}"
            rows.append((str(r["id"]), r["name"], condition,
                         f"thing {r['localThingId']} = {r['localValue']:g}",
                         f"{'yes' if r['matching'] else 'no'} ({seen})"))
        return table(rows) if len(rows) > 1 else "no recipes"
    raise AssertionError(action)


def _measured(answer: dict[str, Any], key: str, unit: str) -> str:
    valid = answer["valid"].get({"power": "2", "current": "5"}[key], True)
    return f"{answer[key]:.2f} {unit}" if valid else f"-- {unit} (no reading)"


def _meter(meter: dict[str, Any] | None) -> str:
    if meter is None:
        return "off (adc.enabled = false)"
    if meter["fault"]:
        return f"FAULT: {meter['fault']}"
    rate = meter["samplesPerSecond"]
    return (f"{rate:g} samples/s" if rate else "starting") + (", CLIPPED" if meter["clipped"] else "")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    url = args.url or (f"ws://localhost:{args.port}/ws" if args.port else default_url())
    request = request_for(args)
    try:
        answer = ask(url, request, args.timeout, read_token(token_files(args.token_file)))
    except (OSError, TimeoutError, WebSocketException) as err:
        print(f"plugctl: cannot reach plugd at {url}: {err}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(answer, indent=2))
    elif answer["command"] != "error":
        print(show(args.action, answer))
    if answer["command"] == "error":
        if not args.json:
            print(f"plugctl: {answer['error']}", file=sys.stderr)
        return 1
    return 0
