"""plugctl finds the token of the daemon on the port it addresses, and says which files it tried."""

import asyncio
import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from plugd import ctl
from plugd.core.model import ThingId
from plugd.doors.api.base import PUBLIC, READ
from plugd.doors.auth import CLI_TOKEN_FILE
from plugd.service import rundir


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """The daemons' runtime directory and plugctl's defaults, of this test's own."""
    path = tmp_path / "run"
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))  # --simulate's default
    monkeypatch.delenv("PLUGD_TOKEN_FILE", raising=False)
    monkeypatch.delenv("PLUGD_URL", raising=False)
    return path


@pytest.fixture
async def two(tmp_path, make_daemon, runtime):
    """Two daemons on ports of their own, each with its own state directory and relay pin."""
    return [await make_daemon(**{"state.dir": str(tmp_path / name), "relay.pin": pin,
                                 "node.id": node})
            for name, pin, node in (("a", 17, 1001), ("b", 27, 1002))]


async def plugctl(capsys, *args):
    """`plugctl ARGS` (in a thread: it blocks, the daemons answer on this loop)."""
    code = await asyncio.to_thread(ctl.main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def relay(d):
    return d.plug.things[ThingId.PLUG].value == 1.0


def token_file(d):
    return d.plug.state.path / CLI_TOKEN_FILE


def defaults(tmp_path):
    """The token files plugctl falls back on, under the `runtime` fixture."""
    return [Path(ctl.DEFAULT_STATE) / CLI_TOKEN_FILE,
            tmp_path / "xdg-state" / "plugd-sim" / CLI_TOKEN_FILE]


async def test_each_port_gets_its_own_daemons_token(two, capsys, runtime):
    a, b = two
    assert a.web.port != b.web.port
    assert sorted(p.name for p in runtime.iterdir()) == sorted(
        f"http-{d.web.port}.json" for d in two)
    assert await plugctl(capsys, "--port", str(a.web.port), "toggle") == (0, "relay on\n", "")
    assert relay(a) and not relay(b)
    assert await plugctl(capsys, "--url", f"ws://localhost:{b.web.port}/ws", "on") == (
        0, "relay on\n", "")
    assert await plugctl(capsys, "--port", str(a.web.port), "off") == (0, "relay off\n", "")
    assert not relay(a) and relay(b)


async def test_state_dir_and_token_file_choose_the_token(two, capsys, tmp_path, monkeypatch):
    a, b = two
    url = f"ws://127.0.0.1:{a.web.port}/ws"
    assert (await plugctl(capsys, "--url", url, "--state-dir", str(a.plug.state.path), "on"))[0] == 0
    assert relay(a) and not relay(b)
    # --state-dir wins over the port's record: b's token is not a's
    code, _, err = await plugctl(capsys, "--url", url, "--state-dir", str(b.plug.state.path), "off")
    assert code == 1 and err.startswith("plugctl: login required")
    assert err.endswith(f"; token files tried: {token_file(b)} (refused by plugd: wrong token)\n")
    assert relay(a)
    # $PLUGD_TOKEN_FILE wins over --state-dir, --token-file over both
    monkeypatch.setenv("PLUGD_TOKEN_FILE", str(token_file(a)))
    assert (await plugctl(capsys, "--url", url, "--state-dir", str(b.plug.state.path), "off"))[0] == 0
    assert not relay(a)
    code, _, err = await plugctl(capsys, "--url", url, "--token-file", str(token_file(b)), "on")
    assert code == 1 and f"{token_file(b)} (refused" in err and str(token_file(a)) not in err
    assert not relay(a)


async def test_a_failure_names_every_file_tried_and_why(two, capsys, tmp_path):
    a, _ = two
    token_file(a).write_text("not the token any more\n")  # the daemon keeps the one it read
    code, out, err = await plugctl(capsys, "--port", str(a.web.port), "on")
    assert code == 1 and out == "" and not relay(a)
    tried = err.partition("token files tried: ")[2].rstrip("\n").split(", ")
    assert [entry.partition(" (")[0] for entry in tried] == [
        str(p) for p in [token_file(a), *defaults(tmp_path)]]
    assert tried[0] == f"{token_file(a)} (refused by plugd: wrong token)"
    assert tried[2] == f"{defaults(tmp_path)[1]} (missing)"
    directory = tmp_path / "a-directory"
    directory.mkdir()
    missing = tmp_path / "nowhere"
    code, _, err = await plugctl(capsys, "--port", str(a.web.port), "--token-file", str(directory), "on")
    assert code == 1 and f"{directory} (unreadable: Is a directory)" in err
    code, _, err = await plugctl(capsys, "--port", str(a.web.port), "--state-dir", str(missing), "on")
    assert code == 1 and f"{missing / CLI_TOKEN_FILE} (missing)" in err
    assert not relay(a)


async def test_records_in_a_directory_others_may_write_are_not_followed(tmp_path, capsys, runtime):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    runtime.mkdir(mode=0o700)
    for port, pid in ((9, int(finished.stdout)), (10, 1), (11, 0)):
        (runtime / f"http-{port}.json").write_text(json.dumps({"pid": pid,
                                                               "state_dir": str(tmp_path)}))
    assert rundir.state_dir_of(9) is None  # its process is gone
    assert rundir.state_dir_of(10) == tmp_path
    assert rundir.state_dir_of(11) is None  # not a process
    (runtime / "http-10.json").chmod(0o666)  # anyone could have written it
    assert rundir.state_dir_of(10) is None
    (runtime / "http-10.json").chmod(0o644)
    runtime.chmod(0o777)  # anyone could have put it there
    assert rundir.state_dir_of(10) is None
    with pytest.raises(PermissionError, match="this user alone"):
        rundir.announce(12, tmp_path)
    assert not (runtime / "http-12.json").exists()


async def test_a_daemon_that_cannot_record_its_port_still_serves(tmp_path, make_daemon, runtime,
                                                                  capsys, caplog):
    runtime.mkdir(mode=0o777)
    runtime.chmod(0o777)
    with caplog.at_level(logging.WARNING, "plugd.service.daemon"):
        d = await make_daemon()
    assert "plugctl will not find this daemon's token by its port" in caplog.text
    assert list(runtime.iterdir()) == []
    code, _, err = await plugctl(capsys, "--port", str(d.web.port), "on")
    assert code == 1 and str(token_file(d)) not in err and str(defaults(tmp_path)[1]) in err
    assert (await plugctl(capsys, "--port", str(d.web.port), "--state-dir",
                          str(d.plug.state.path), "on"))[0] == 0
    assert relay(d)


async def _http(port, path):
    """Status, headers and body of GET `path`, whatever the status."""
    def get():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
                return response.status, str(response.headers), response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, str(err.headers), err.read().decode()
    return await asyncio.to_thread(get)


async def test_the_record_goes_at_stop_and_no_answer_tells_where_the_token_is(tmp_path, make_daemon,
                                                                               runtime):
    d = await make_daemon()
    port = d.web.port
    secrets = (str(tmp_path), str(d.plug.state.path), str(runtime), CLI_TOKEN_FILE,
               f"http-{port}.json")
    assert rundir.state_dir_of(port) == d.plug.state.path.resolve()
    heard = []
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        for name in [*sorted(PUBLIC | READ), "switch", "save_settings"]:
            await ws.send(json.dumps({"command": name, "token": "guess", "state": "on"}))
            while True:  # the answer, after any values pushed meanwhile
                heard.append(await ws.recv())
                if json.loads(heard[-1])["command"] in ("response_" + name.removeprefix("request_"),
                                                        "error"):
                    break
    answers = [json.loads(text) for text in heard]
    assert {a["command"] for a in answers} >= {"response_session", "response_status", "error"}
    for path in ("/", "/session", "/session?ticket=guess", "/ws", "/cli-token", "/../cli-token"):
        status, headers, body = await _http(port, path)
        heard.append(f"{status} {headers} {body}")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{port}/ws", origin="http://elsewhere.invalid"):
            pass
    heard.append(refused.value.response.body.decode())
    assert not [text for text in heard if any(secret in text for secret in secrets)]
    await d.stop()
    assert not (runtime / f"http-{port}.json").exists()
