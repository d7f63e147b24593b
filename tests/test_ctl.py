"""plugctl finds the token of the daemon on the port it addresses, and says which files it tried."""

import asyncio
import json
import subprocess
import sys

import pytest
from conftest import sim_config
from websockets.asyncio.client import connect

from plugd import ctl
from plugd.core.model import ThingId
from plugd.service import rundir
from plugd.service.daemon import Daemon


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """The daemons' runtime directory, of this test's own."""
    path = tmp_path / "run"
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(path))
    monkeypatch.delenv("PLUGD_TOKEN_FILE", raising=False)
    return path


@pytest.fixture
async def two(tmp_path, factory, runtime):
    daemons = [Daemon(sim_config(tmp_path / name, **{"relay.pin": pin, "node.id": node}),
                      pin_factory=factory)
               for name, pin, node in (("a", 17, 1001), ("b", 27, 1002))]
    for d in daemons:
        await d.start()
    yield daemons
    for d in daemons:
        await d.stop()


async def plugctl(capsys, *args):
    code = await asyncio.to_thread(ctl.main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def relay(d):
    return d.plug.things[ThingId.PLUG].value == 1.0


async def test_each_port_gets_its_own_daemons_token(two, capsys, runtime):
    a, b = two
    assert sorted(p.name for p in runtime.iterdir()) == sorted(
        f"http-{d.web.port}.json" for d in two)
    assert await plugctl(capsys, "--port", str(a.web.port), "on") == (0, "relay on\n", "")
    assert relay(a) and not relay(b)
    assert (await plugctl(capsys, "--port", str(b.web.port), "on"))[0] == 0
    assert relay(b)


async def test_state_dir_names_the_token_and_a_failure_names_every_file_tried(two, capsys, tmp_path):
    a, _ = two
    url = f"ws://127.0.0.1:{a.web.port}/ws"
    code, _, _ = await plugctl(capsys, "--url", url, "--state-dir", str(a.plug.state.path), "on")
    assert code == 0 and relay(a)
    missing = tmp_path / "nowhere"
    code, _, err = await plugctl(capsys, "--url", url, "--state-dir", str(missing), "off")
    assert code == 1 and "login required" in err
    assert f"{missing}/cli-token (missing)" in err
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not the token\n")
    code, _, err = await plugctl(capsys, "--url", url, "--token-file", str(wrong), "off")
    assert code == 1 and f"{wrong} (refused by plugd: wrong token)" in err
    assert relay(a)


async def test_a_dead_daemons_record_is_not_followed(tmp_path, capsys, runtime, monkeypatch):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    runtime.mkdir()
    (runtime / "http-9.json").write_text(json.dumps({"pid": int(finished.stdout),
                                                     "state_dir": str(tmp_path)}))
    (runtime / "http-10.json").write_text(json.dumps({"pid": 1, "state_dir": str(tmp_path)}))
    assert rundir.state_dir_of(9) is None
    assert rundir.state_dir_of(10) == tmp_path
    (runtime / "http-10.json").chmod(0o666)  # anyone could have written it: not trusted
    assert rundir.state_dir_of(10) is None


async def test_the_record_goes_at_stop_and_no_answer_tells_where_the_token_is(tmp_path, factory,
                                                                               runtime):
    d = Daemon(sim_config(tmp_path / "state"), pin_factory=factory)
    await d.start()
    port = d.web.port
    try:
        assert rundir.state_dir_of(port) == (tmp_path / "state").resolve()
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            for request in ({"command": "request_session"}, {"command": "switch", "state": "on"},
                            {"command": "login", "token": "guess"}, {"command": "request_status"}):
                await ws.send(json.dumps(request))
                answer = await ws.recv()
                while '"command": "response_' not in answer and '"command": "error"' not in answer:
                    answer = await ws.recv()
                assert str(tmp_path) not in answer and "cli-token" not in answer
    finally:
        await d.stop()
    assert not (runtime / f"http-{port}.json").exists()
