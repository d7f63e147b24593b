"""`plugctl`: a command line for a running plugd, over its WebSocket API."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from plugd.core.model import Relation
from plugd.doors.auth import CLI_TOKEN_FILE
from plugd.errors import ConfigError
from plugd.service import rundir
from plugd.service.config import StateConfig, load, simulate_defaults

RELATION_WORDS = {Relation.EQUALS: "is", Relation.NOT_EQUALS: "is not",
                  Relation.BIGGER_THAN: "is above", Relation.SMALLER_THAN: "is below",
                  Relation.NOT_BIGGER_THAN: "is at most", Relation.NOT_SMALLER_THAN: "is at least"}

DEFAULT_STATE = StateConfig().dir
#: Hosts that are this machine, where the daemons' records tell their state directories.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: The port a WebSocket URL without one means.
DEFAULT_PORTS = {"ws": 80, "wss": 443}
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
    """The daemon's WebSocket: $PLUGD_URL, else this machine's plugd at its configured port."""
    if os.environ.get("PLUGD_URL"):
        return os.environ["PLUGD_URL"]
    try:
        port = load(None).http.port
    except ConfigError:
        port = 80
    return f"ws://localhost:{port}/ws"


def parser() -> argparse.ArgumentParser:
    """The `plugctl` command line."""
    p = argparse.ArgumentParser(prog="plugctl", description="Talk to a running plugd.")
    p.add_argument("--url", help="the daemon's WebSocket (default $PLUGD_URL, else "
                                 "ws://localhost:<http.port of /etc/plugd/plugd.toml>/ws)")
    p.add_argument("--port", type=int, help="shorthand for --url ws://localhost:PORT/ws")
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="log in with this token file (default $PLUGD_TOKEN_FILE, else the "
                        "cli-token of --state-dir, else that of the daemon on the port on this "
                        "machine, else of /var/lib/plugd or the --simulate state directory)")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="the state directory of the daemon addressed, for its token")
    sub = p.add_subparsers(dest="action", required=True, metavar="COMMAND")
    simple = {name: sub.add_parser(name, help=text) for name, (_, text) in REQUESTS.items()}
    simple["on"].add_argument("--for", dest="hold", type=duration, metavar="TIME",
                              help="switch off again after TIME: 90 (seconds), 90s, 10m, 1h30m")
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
    token = sub.add_parser("token", help="tokens for the HTTP API: add NAME (shows the token "
                                         "once), list, revoke NAME")
    token.add_argument("what", choices=["add", "list", "revoke"])
    token.add_argument("name", nargs="?", help="the token's name (add, revoke)")
    schedule = sub.add_parser("schedule", help="schedules: add (or change one with --id), list, "
                                               "delete ID")
    schedules = schedule.add_subparsers(dest="what", required=True, metavar="add|list|delete")
    add = schedules.add_parser("add", help="add a schedule, or change the one with --id")
    add.add_argument("--at", required=True, help='a time of day "HH:MM", "sunrise" or "sunset"')
    add.add_argument("--offset", type=int, default=0, metavar="MIN",
                     help="minutes after (negative: before) that time, -720..720")
    add.add_argument("--days", type=parse_days, default=[], metavar="DAYS",
                     help="mon-fri, sat,sun, fri-mon, weekdays, weekend, daily (default), or 0..6")
    add.add_argument("--action", dest="switch", required=True, choices=["on", "off", "toggle"],
                     help="what it does to the relay")
    add.add_argument("--disabled", action="store_true", help="keep it, but do not run it")
    add.add_argument("--id", type=int, help="change the schedule with this id")
    schedules.add_parser("list", help="the schedules and their next runs")
    delete = schedules.add_parser("delete", help="delete a schedule")
    delete.add_argument("id", type=int)
    return p


DAY_ABBREVIATIONS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_WORDS = {"daily": [], "all": [], "every": [], "weekdays": [0, 1, 2, 3, 4], "weekend": [5, 6]}


def parse_days(text: str) -> list[int]:
    """Weekdays on the command line ("mon-fri", "sat,sun", "fri-mon", "weekend", "0,3") as the
    API's list (0 = Monday; empty: every day)."""
    text = text.strip().lower()
    if text in DAY_WORDS:
        return DAY_WORDS[text]

    def day(word: str) -> int:
        word = word.strip()
        if word.isdigit() and int(word) <= 6:
            return int(word)
        if word[:3] in DAY_ABBREVIATIONS and len(word) >= 3:
            return DAY_ABBREVIATIONS.index(word[:3])
        raise argparse.ArgumentTypeError(f"{word!r} is not a weekday (mon..sun, or 0..6 from Monday)")

    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        start = day(first)
        end = day(last) if dash else start
        days.update((start + n) % 7 for n in range((end - start) % 7 + 1))
    return sorted(days)


def days_words(days: list[int]) -> str:
    """The API's weekday list as people read it: "every day", "Mon-Fri" (with an en dash),
    "Sat, Sun"."""
    if not days or len(days) == 7:
        return "every day"
    names = [d.capitalize() for d in DAY_ABBREVIATIONS]
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ", ".join(f"{names[r[0]]}–{names[r[-1]]}" if len(r) > 2 else ", ".join(names[d] for d in r)
                     for r in runs)


def _next_words(schedule: dict[str, Any]) -> str:
    """When a schedule runs next, in local time, or why not."""
    if not schedule["enabled"]:
        return "off"
    if schedule.get("next") is None:
        return f"none ({schedule['sun']})" if schedule.get("sun") else "none"
    return time.strftime("%a %Y-%m-%d %H:%M", time.localtime(schedule["next"]))


def request_for(args: argparse.Namespace) -> dict[str, Any]:
    """The WebSocket request a subcommand sends."""
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
    if args.action == "schedule":
        if args.what == "list":
            return {"command": "request_schedules"}
        if args.what == "delete":
            return {"command": "delete_schedule", "id": args.id}
        schedule = {"enabled": not args.disabled, "days": args.days, "at": args.at,
                    "offset": args.offset, "action": args.switch}
        return {"command": "save_schedule", "schedule": {**schedule, **({"id": args.id} if args.id else {})}}
    if args.action == "token":
        if args.what == "list":
            return {"command": "request_tokens"}
        if not args.name:
            parser().error(f"token {args.what} needs the token's NAME")
        return {"command": f"{args.what}_token", "name": args.name}
    if args.action == "on" and getattr(args, "hold", None):
        return {**REQUESTS["on"][0], "for": args.hold}
    return REQUESTS[args.action][0]


def duration(text: str) -> float:
    """A duration on the command line ("90", "90s", "10m", "1h30m") in seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90, 90s, 10m or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def token_files(url: str, given: Path | None, state_dir: Path | None) -> list[Path]:
    """The token files to try, in order: the one given, else the state directory's (given, or
    that of the daemon on the addressed port of this machine), else the default ones."""
    if given is not None:
        return [given]
    if os.environ.get("PLUGD_TOKEN_FILE"):
        return [Path(os.environ["PLUGD_TOKEN_FILE"])]
    if state_dir is not None:
        return [state_dir / CLI_TOKEN_FILE]
    files = []
    address = urlsplit(url)
    try:
        port = address.port or DEFAULT_PORTS.get(address.scheme)
    except ValueError:  # not a number: connecting says so
        port = None
    if address.hostname in LOCAL_HOSTS and port is not None:
        found = rundir.state_dir_of(port)
        if found is not None:
            files.append(found / CLI_TOKEN_FILE)
    defaults = [Path(DEFAULT_STATE) / CLI_TOKEN_FILE, Path(simulate_defaults()["state.dir"]) / CLI_TOKEN_FILE]
    return list(dict.fromkeys([*files, *defaults]))


def read_tokens(files: list[Path]) -> list[tuple[Path, str | None, str]]:
    """(file, its token or None, why not) for each file, in order."""
    read: list[tuple[Path, str | None, str]] = []
    for path in files:
        try:
            token = path.read_text().strip()
        except FileNotFoundError:
            read.append((path, None, "missing"))
        except OSError as err:
            read.append((path, None, f"unreadable: {err.strerror or err}"))
        else:
            read.append((path, token, "") if token else (path, None, "empty"))
    return read


def ask(url: str, request: dict[str, Any], timeout: float,
        tokens: list[tuple[Path, str | None, str]]) -> dict[str, Any]:
    """Send one request, logged in with the first token the daemon accepts; return its answer.

    When no token is accepted, a request that needs a login is answered with
    an error naming each token file tried and why it failed.
    """
    with connect(url, open_timeout=timeout, close_timeout=1) as ws:
        def answer_to(message: dict[str, Any]) -> dict[str, Any]:
            expected = "response_" + message["command"].removeprefix("request_")
            ws.send(json.dumps(message))
            while True:  # skip the values the daemon pushes meanwhile
                answer = json.loads(ws.recv(timeout=timeout))
                if answer.get("command") in (expected, "error"):
                    return answer

        tried = []
        for path, token, why in tokens:
            if token is not None:
                login = answer_to({"command": "login", "token": token})
                if login.get("success"):
                    return answer_to(request)
                why = f"refused by plugd: {login.get('error')}"
            tried.append(f"{path} ({why})")
        answer = answer_to(request)
        if answer.get("login") and tried:
            answer["error"] += f"; token files tried: {', '.join(tried)}"
        return answer


def _mqtt(mqtt: dict[str, Any] | None) -> str:
    """The broker connection in a line: off, or its state, broker and last error."""
    if not mqtt or not mqtt.get("enabled"):
        return "off"
    error = f" (last error: {mqtt['error']})" if mqtt.get("error") else ""
    return (f"{mqtt['state']} to {mqtt['broker']}{' over TLS' if mqtt['tls'] else ''}, topics "
            f"{mqtt['topicPrefix']}/, {mqtt['published']} published, {mqtt['commands']} "
            f"commands{error}")


def show(action: str, answer: dict[str, Any]) -> str:
    """A person's reading of the daemon's answer to `action`."""
    if action == "status":
        counters = answer["counters"]
        return "\n".join([
            f"node     {answer['nodeName']} (id {answer['nodeId']})"
            + (", simulated hardware" if answer["simulate"] else ""),
            f"relay    {'on' if answer['relay'] else 'off'}"
            + (" (override: recipes do not switch it)" if answer["override"] else "")
            + (f", off at {time.strftime('%H:%M:%S', time.localtime(answer['autoOffAt']))} "
               "(auto-off)" if answer.get("autoOffAt") else ""),
            f"power    {_measured(answer, 'power', 'W')}, {_measured(answer, 'current', 'A')}, "
            f"{answer['energyToday']:.2f} Wh today"
            + (f"; PROTECTION TRIPPED: {answer['tripped']}" if answer["tripped"] else ""),
            f"meter    {_meter(answer['meter'])}",
            f"mesh     {answer['nodesOnline']} nodes online, {answer['nodesKnown']} known; "
            f"UDP {answer['udpPort']} to {', '.join(answer['broadcast']) or 'no interface'}",
            f"packets  {counters['received']} received, {counters['invalid']} invalid, "
            f"{counters['dropped_full']} dropped (table full), {counters['sent']} sent",
            f"recipes  {answer['recipes']}",
            f"mqtt     {_mqtt(answer.get('mqtt'))}",
            f"display  {answer['display']!r}" if answer["display"] is not None else "display  none",
            *(f"FAULT    {what}: {answer[key]}" for key, what in
              (("relayFault", "the relay does not switch"), ("displayFault", "the display fails"))
              if answer.get(key)),
            f"uptime   {answer['uptime']:.0f} s, plugd {answer['version']}",
        ])
    if action in ("on", "off", "toggle"):
        off_at = answer.get("autoOffAt")
        until = f" until {time.strftime('%H:%M:%S', time.localtime(off_at))}" if off_at else ""
        return f"relay {'on' if answer['relay'] else 'off'}{until}"
    if action == "calibrate":
        cal = answer["calibration"]
        zero = "tracked" if cal["zero_volts"] is None else f"{cal['zero_volts']:.4f} V"
        return (f"calibration: current gain {cal['current_gain']:.4f}, {cal['voltage']:g} V, "
                f"power factor {cal['power_factor']:g}, zero {zero}")
    if action == "load":
        return f"simulated load {answer['watts']:g} W"
    if action == "fault":
        return f"simulated {answer['chip']} fault: {answer['fault']}"
    if action == "schedule":
        if "schedules" in answer:
            rows = [("ID", "ON", "AT", "DAYS", "ACTION", "NEXT")] + [
                (str(s["id"]), "yes" if s["enabled"] else "no", s.get("words") or s["at"],
                 days_words(s["days"]), s["action"], "-" if not s["enabled"] else _next_words(s))
                for s in answer["schedules"]]
            return table(rows) if len(rows) > 1 else "no schedules"
        if "schedule" in answer:
            s = answer["schedule"]
            shown = "off" if not s["enabled"] else f"next {_next_words(s)}"
            return f"schedule {s['id']}: {s['action']} at {s.get('words') or s['at']}, " \
                   f"{days_words(s['days'])}, {shown}"
        return f"schedule {answer['id']} deleted"
    if action == "token":
        if "token" in answer:
            return (f"{answer['token']}\n(token {answer['name']!r}: shown this once; send it as "
                    f"'Authorization: Bearer <token>')")
        if "tokens" in answer:
            rows = [("NAME", "MADE")] + [
                (t["name"], time.strftime("%Y-%m-%d %H:%M", time.localtime(t["created"])))
                for t in answer["tokens"]]
            return table(rows) if len(rows) > 1 else "no tokens"
        return f"token {answer['name']!r} revoked"
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
    """Rows as aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    """`plugctl`: 0 when done, 1 when plugd refused, 3 when it could not be reached."""
    args = parser().parse_args(argv)
    url = args.url or (f"ws://localhost:{args.port}/ws" if args.port else default_url())
    request = request_for(args)
    tokens = read_tokens(token_files(url, args.token_file, args.state_dir))
    try:
        answer = ask(url, request, args.timeout, tokens)
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
