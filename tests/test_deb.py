"""The Debian package: built by packaging/deb/build, inspected with dpkg-deb, linted, run
unpacked with Debian's own /usr/bin/python3, and its maintainer scripts run in throwaway roots.

CI is plain Debian 12 amd64, where the Raspberry Pi OS packages the .deb depends on
(python3-rpi-lgpio | python3-rpi.gpio) do not exist. So it is unpacked (dpkg-deb -x),
installed into a throwaway root with dpkg --root --force-depends, and, once, installed and
purged by apt in a fresh Debian that debootstrap makes, beside a stand-in for that package.
PLUGD_DEB=path/to/plugd_*.deb tests a prebuilt package instead of building one (building
downloads the carried wheels from the package index).
"""

from __future__ import annotations

import configparser
import grp
import os
import re
import shutil
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from plugd import __version__
from plugd.doors.pagefiles import Build
from tests.support import PlugdProcess

TOP = Path(__file__).resolve().parent.parent
PACKAGING = TOP / "packaging" / "deb"
DEBIAN_PYTHON = Path("/usr/bin/python3")
#: What the package takes from the distribution, and the module each gives plugd (the
#: Raspberry Pi OS GPIO alternatives aside): the unpacked tree runs against exactly these.
FROM_DEBIAN = {"python3-colorzero": "colorzero", "python3-smbus2": "smbus2",
               "python3-systemd": "systemd", "python3-click": "click", "python3-h11": "h11",
               "python3-idna": "idna", "python3-prometheus-client": "prometheus_client"}
GPIO_ALTERNATIVES = ["python3-rpi-lgpio", "python3-rpi.gpio"]
#: Modules that Debian's packages above bring along for their own use (python3-prometheus-client
#: imports python3-decorator's).
INDIRECT = {"decorator"}
#: Modules a library would bring only with Blinka, whose import probes the board.
BLINKA = {"adafruit_blinka", "adafruit_platformdetect", "board", "digitalio", "microcontroller"}
#: The Maintainer field: the repository names no person, so the project answers.
MAINTAINER = "plugd developers <plugd@users.noreply.github.com>"
#: The groups the service joins besides plugd, made by the package where missing.
DEVICE_GROUPS = ["gpio", "i2c"]
#: The units' drop-ins: the addresses allowed, in the package beside the units.
DROP_INS = sorted(p.relative_to(TOP / "systemd") for p in (TOP / "systemd").glob("*.d/*.conf"))
#: The configuration's mode, in the archive and once installed.
CONFIG_MODE = 0o640
#: What creating the groups leaves in a root's /etc, and which stays after a purge.
ACCOUNTS = {"etc/group", "etc/group-", "etc/gshadow", "etc/gshadow-", "etc/.pwd.lock"}

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None,
                                reason="dpkg-deb is missing: not a Debian system (apt-get install dpkg)")


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """A command that must succeed; its output in the failure's message."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def carried() -> dict[str, str]:
    """carried.txt's pins: normalized name -> version."""
    pins = {}
    for line in (PACKAGING / "carried.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


# --- the package, built once ----------------------------------------------------------------


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("PLUGD_DEB"):
        return Path(os.environ["PLUGD_DEB"]).resolve()
    out = tmp_path_factory.mktemp("deb")
    # The venv's interpreter has pip; the build checks for Python >= 3.11 itself.
    done = run(PACKAGING / "build", out, env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def fields(deb: Path) -> dict[str, str]:
    text = run("dpkg-deb", "--field", deb).stdout
    return dict(re.findall(r"^(\S+): (.*(?:\n .*)*)", text, re.M))


@pytest.fixture(scope="session")
def contents(deb: Path) -> dict[str, tuple[str, str]]:
    """Path (no leading ./) -> (mode, owner) of every entry of the data archive."""
    entries = {}
    for line in run("dpkg-deb", "--contents", deb).stdout.splitlines():
        mode, owner, _size, _date, _time, path, *_link = line.split()
        entries[path.removeprefix("./").rstrip("/")] = (mode, owner)
    entries.pop("", None)
    return entries


@pytest.fixture(scope="session")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    run("dpkg-deb", "--extract", deb, root)
    return root


@pytest.fixture(scope="session")
def control(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("control") / "DEBIAN"
    run("dpkg-deb", "--control", deb, directory)
    return directory


def depends(fields: dict[str, str]) -> list[list[str]]:
    """Depends as alternatives of 'name (version)' strings."""
    return [[alt.strip() for alt in group.split("|")] for group in fields["Depends"].split(",")]


def repo_units() -> list[str]:
    return sorted(p.name for p in (TOP / "systemd").iterdir() if p.suffix in (".service", ".socket"))


# --- what the package says and holds ---------------------------------------------------------


def test_control_fields(deb: Path, fields: dict[str, str]) -> None:
    assert deb.name == f"plugd_{__version__}_all.deb"
    assert (fields["Package"], fields["Version"], fields["Architecture"]) == ("plugd", __version__, "all")
    assert fields["Maintainer"] == MAINTAINER
    assert int(fields["Installed-Size"]) > 0
    assert "\n" not in fields["Depends"], "binary packages want Depends on one line"
    groups = depends(fields)
    assert ["python3 (>= 3.11)"] in groups
    assert GPIO_ALTERNATIVES in groups, "Raspberry Pi OS: rpi-lgpio first (the Pi 5), else RPi.GPIO"
    names = {alt.split()[0] for group in groups for alt in group}
    assert names == {"python3", *FROM_DEBIAN, *GPIO_ALTERNATIVES}
    # What the package carries, it must not also take from the distribution.
    assert not names & {f"python3-{name}" for name in carried()}


def test_every_requirement_is_carried_or_a_dependency(fields: dict[str, str]) -> None:
    """setup.cfg's install_requires, each met by a carried pin or named in Depends."""
    setup = configparser.ConfigParser()
    setup.read(TOP / "setup.cfg")
    pins = carried()
    depended = {alt.split()[0] for group in depends(fields) for alt in group}
    for line in setup["options"]["install_requires"].split("\n"):
        if not line.strip():
            continue
        req = Requirement(line)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in pins:
            assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} does not meet {req}"
        else:
            assert f"python3-{name}" in depended, f"{req}: neither carried nor in Depends"


def test_files_in_their_places(contents: dict[str, tuple[str, str]]) -> None:
    paths = set(contents)
    for path in ["usr/bin/plugd", "usr/bin/plugctl"]:
        assert contents[path][0] == "-rwxr-xr-x", path
    expected = {"etc/plugd/plugd.toml", "usr/lib/plugd/plugd/cli.py", "usr/lib/plugd/plugd/ctl.py",
                "usr/lib/sysusers.d/plugd.conf", "usr/lib/sysusers.d/plugd-devices.conf",
                "lib/udev/rules.d/60-plugd.rules", "usr/share/lintian/overrides/plugd",
                "usr/share/doc/plugd/copyright", "usr/share/doc/plugd/changelog.gz",
                "usr/share/man/man1/plugd.1.gz", "usr/share/man/man1/plugctl.1.gz"}
    expected |= {f"lib/systemd/system/{unit}" for unit in repo_units()}
    expected |= {f"lib/systemd/system/{dropin}" for dropin in DROP_INS}
    expected |= {f"usr/share/plugd/www/{p.relative_to(TOP / 'www')}"
                 for p in (TOP / "www").rglob("*") if p.is_file()}
    expected |= {f"usr/lib/plugd/{p.relative_to(TOP)}" for p in (TOP / "plugd").rglob("*.py")}
    assert expected <= paths, sorted(expected - paths)
    assert "lib/systemd/system/plugd.service" in paths
    # Only these trees; nothing in any site-packages or dist-packages; no byte-code (the
    # postinst compiles it), no compiled code (Architecture: all); everything root's.
    tops = ("etc/plugd", "lib/systemd/system", "lib/udev/rules.d", "usr/bin", "usr/lib/plugd",
            "usr/lib/sysusers.d", "usr/share/doc/plugd", "usr/share/lintian/overrides",
            "usr/share/man/man1", "usr/share/plugd")
    strays = [p for p in paths if not any(p == t or p.startswith(t + "/") or t.startswith(p + "/")
                                          for t in tops)]
    assert not strays
    assert not [p for p in paths if re.search(r"site-packages|dist-packages|__pycache__|\.pyc$|\.so\b", p)]
    assert {owner for _mode, owner in contents.values()} == {"root/root"}
    # 644 and 755, but the configuration, which can hold the mesh key: not for everyone.
    odd = {p: mode for p, (mode, _owner) in contents.items()
           if mode not in ("-rw-r--r--", "-rwxr-xr-x", "drwxr-xr-x")}
    assert odd == {"etc/plugd/plugd.toml": stat.filemode(stat.S_IFREG | CONFIG_MODE)}


def sysusers_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_group_for_the_configuration(unpacked: Path) -> None:
    """The sysusers.d file the postinst hands to systemd-sysusers: one group, no user."""
    installed = unpacked / "usr/lib/sysusers.d/plugd.conf"
    assert installed.read_bytes() == (PACKAGING / "sysusers.conf").read_bytes()
    assert sysusers_lines(installed) == [["g", "plugd", "-"]]


def test_device_groups_and_the_rule_that_gives_them_the_devices(unpacked: Path) -> None:
    """gpio and i2c, which the unit joins, made where missing; the udev rule gives each the
    devices the unit allows (DeviceAllow=), read and write for the group."""
    installed = unpacked / "usr/lib/sysusers.d/plugd-devices.conf"
    assert installed.read_bytes() == (PACKAGING / "devices.conf").read_bytes()
    assert sysusers_lines(installed) == [["g", group, "-"] for group in DEVICE_GROUPS]
    service = (TOP / "systemd/plugd.service").read_text()
    joined = re.findall(r"^SupplementaryGroups=(.*)$", service, re.M)
    assert set(DEVICE_GROUPS) <= {group for line in joined for group in line.split()}
    rule = unpacked / "lib/udev/rules.d/60-plugd.rules"
    assert rule.read_bytes() == (PACKAGING / "udev.rules").read_bytes()
    given = {}
    for line in rule.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            keys = dict(re.findall(r'(\w+)=="?([^",]*)"?', line))
            sets = dict(re.findall(r'(\w+)="([^"]*)"', line))
            assert sets["MODE"] == "0660", line
            given[keys["SUBSYSTEM"]] = sets["GROUP"]
    assert given == {"gpio": "gpio", "bcm2835-gpiomem": "gpio", "i2c-dev": "i2c"}
    allowed = re.findall(r"^DeviceAllow=(\S+) rw$", service, re.M)
    assert allowed == ["char-gpiochip", "char-i2c", "/dev/gpiomem"]


def test_conffile_is_the_configuration(control: Path) -> None:
    assert (control / "conffiles").read_text().split() == ["/etc/plugd/plugd.toml"]
    sums = (control / "md5sums").read_text()
    assert "usr/lib/plugd/plugd/cli.py" in sums and "etc/plugd/plugd.toml" not in sums


def test_carries_the_pins_and_only_micropython_of_blinka(unpacked: Path) -> None:
    lib = unpacked / "usr/lib/plugd"
    infos = {re.sub(r"[-_.]+", "-", p.name.removesuffix(".dist-info")).lower()
             for p in lib.glob("*.dist-info")}
    wanted = {f"{name}-{re.sub(r'[-_.]+', '-', version)}".lower()
              for name, version in carried().items() if name != "adafruit-blinka"}
    assert infos == wanted
    tops = {p.name for p in lib.iterdir()}
    assert "micropython" in tops and not tops & BLINKA
    # The launchers put this directory before the standard library: it must shadow none of it.
    assert not {name.removesuffix(".py") for name in tops} & sys.stdlib_module_names
    assert (lib / "busio.py").read_text() == (PACKAGING / "busio.py").read_text()
    assert not (lib / "bin").exists()


def test_units_as_in_the_repository(unpacked: Path, control: Path) -> None:
    for unit in [*repo_units(), *DROP_INS]:
        assert (unpacked / "lib/systemd/system" / unit).read_bytes() == (TOP / "systemd" / unit).read_bytes()
    # Sockets first, so the postinst starts and the prerm stops the socket before its service.
    order = sorted(repo_units(), key=lambda unit: not unit.endswith(".socket"))
    for script in ("postinst", "prerm", "postrm"):
        assert f'units="{" ".join(order)}"' in (control / script).read_text()


def allowed(path: Path) -> list[str]:
    """Every address the IPAddressAllow= lines of a unit or drop-in name, in order."""
    return [address for value in re.findall(r"^IPAddressAllow=(.*)$", path.read_text(), re.M)
            for address in value.split()]


def test_addresses_allowed_come_from_the_drop_ins() -> None:
    """The units deny every address and allow none; their drop-ins allow loopback, link-local,
    multicast, the private ranges and 100.64.0.0/10 (Tailscale's), the socket's the service's
    less the limited broadcast, which only the mesh sends to."""
    for unit in repo_units():
        lines = (TOP / "systemd" / unit).read_text().splitlines()
        assert "IPAddressDeny=any" in lines and not allowed(TOP / "systemd" / unit), unit
    assert [str(dropin) for dropin in DROP_INS] == ["plugd.service.d/addresses.conf",
                                                    "plugd.socket.d/addresses.conf"]
    service, sock = (TOP / "systemd" / dropin for dropin in DROP_INS)
    for dropin, section in ((service, "[Service]"), (sock, "[Socket]")):
        lines = [line for line in dropin.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert lines[0] == section, dropin
    lan = {"localhost", "link-local", "multicast", "10.0.0.0/8", "172.16.0.0/12",
           "192.168.0.0/16", "fc00::/7", "100.64.0.0/10"}
    assert set(allowed(sock)) == lan
    assert set(allowed(service)) == lan | {"255.255.255.255"}


def test_drop_ins_are_read_where_the_package_puts_them(unpacked: Path, tmp_path: Path) -> None:
    """systemd finds the drop-ins beside the installed units: verify names a broken one of
    either unit, and the sandbox's analysis sees the allow list only while they are there."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze (apt-get install systemd)")
    root = tmp_path / "root"
    units = root / "lib/systemd/system"
    shutil.copytree(unpacked / "lib/systemd/system", units)
    for program in ("usr/bin/plugd", "bin/kill"):  # ExecStart= and ExecReload= must exist
        (root / program).parent.mkdir(parents=True, exist_ok=True)
        (root / program).write_text("#!/bin/sh\n")
        (root / program).chmod(0o755)

    def analyze(*args: str) -> str:
        done = subprocess.run(["systemd-analyze", *args, f"--root={root}"], capture_output=True,
                              text=True, timeout=60)
        return done.stdout + done.stderr

    verify = ("verify", "--man=no", "--recursive-errors=no", "plugd.service", "plugd.socket")
    assert analyze(*verify) == ""
    for unit in ("plugd.service", "plugd.socket"):
        dropin = units / f"{unit}.d/addresses.conf"
        good = dropin.read_text()
        dropin.write_text(good + "IPAddressAllow=100.64.0.0/99\n")
        said = analyze(*verify)
        dropin.write_text(good)
        assert f"{dropin}:" in said and "100.64.0.0/99" in said, said
    security = ("security", "--offline=true", "plugd.service")
    assert "IP address allow list with non-localhost entries" in analyze(*security)
    shutil.rmtree(units / "plugd.service.d")
    assert "Service blocks all IP address ranges" in analyze(*security)


def test_lintian_finds_nothing(deb: Path, unpacked: Path) -> None:
    """No tag at any level, pedantic included, but those the package's overrides file says
    are wrong for plugd, each with its reason there."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (apt-get install lintian)")
    overrides = unpacked / "usr/share/lintian/overrides/plugd"
    assert overrides.read_bytes() == (PACKAGING / "lintian-overrides").read_bytes()
    done = subprocess.run(["lintian", "--display-level", ">=pedantic", str(deb)],
                          capture_output=True, text=True, timeout=300)
    tags = re.findall(r"^[EWIPX]: plugd.*$", done.stdout, re.M)
    # An override that matches nothing is a tag of its own (mismatched-override): none hides.
    assert done.returncode == 0 and not tags, done.stdout + done.stderr


def test_page_references_no_other_host(unpacked: Path) -> None:
    """The page loads nothing from elsewhere: no scheme://host, no //host, outside comments."""
    www = unpacked / "usr/share/plugd/www"
    found = []
    for path in www.rglob("*"):
        if path.suffix not in (".html", ".js", ".mjs", ".css", ".svg", ".json", ".webmanifest"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        # Comments load nothing (a vendored library's banner names its home).
        text = re.sub(r"/\*.*?\*/|<!--.*?-->", "", text, flags=re.S)
        if path.suffix == ".svg":  # its namespaces are names, never fetched
            text = re.sub(r'xmlns(:\w+)?="[^"]*"', "", text)
        for pattern in (r"\b[a-z][a-z0-9+.-]*://[\w.-]",       # http://host, wss://host...
                        r"""["'`(]\s*//[\w-]+\.[\w.-]""",     # "//host.tld", url(//host)
                        r"@import\s+(url\()?\s*[\"']?[a-z]+:"):
            found += [f"{path.relative_to(www)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert not found


# --- the unpacked tree, run with Debian's python3 -------------------------------------------


def debian_python() -> None:
    """Skip unless /usr/bin/python3 is >= 3.11 and has what the package takes from Debian."""
    if not DEBIAN_PYTHON.exists():
        pytest.skip("no /usr/bin/python3")
    modules = ", ".join(FROM_DEBIAN.values())
    check = subprocess.run([DEBIAN_PYTHON, "-I", "-c",
                            f"import sys; assert sys.version_info >= (3, 11); import {modules}"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("/usr/bin/python3 must be >= 3.11 with the packages plugd takes from Debian: "
                    f"apt-get install {' '.join(FROM_DEBIAN)}\n{check.stderr.strip()}")


def test_launchers_run_with_debian_python(unpacked: Path) -> None:
    debian_python()
    for name in ("plugd", "plugctl"):
        assert (unpacked / "usr/bin" / name).read_text().startswith("#!/usr/bin/python3 -I\n")
    assert run(unpacked / "usr/bin/plugd", "--version").stdout.strip() == f"plugd {__version__}"
    assert "usage: plugctl" in run(unpacked / "usr/bin/plugctl", "--help").stdout


IMPORTS = """
import sys
sys.path.insert(0, sys.argv[1])  # as the launchers do
from plugd.hardware.sim.gpio import install
install()  # RPi.GPIO: from python3-rpi-lgpio | python3-rpi.gpio on a Pi
import adafruit_ads1x15.ads1115, adafruit_ads1x15.analog_in, adafruit_ads1x15.ads1x15
import gpiozero.pins.mock, tm1637, smbus2, zeroconf.asyncio, websockets.asyncio.server
import plugd.service.daemon, plugd.ctl, plugd.doors.mdns, plugd.service.systemd, plugd.hardware.i2c
import plugd.doors.mqtt  # aiomqtt and paho-mqtt, carried
from importlib.metadata import entry_points
assert "lgpio" in {e.name for e in entry_points(group="gpiozero_pin_factories")}
for name, module in sorted(sys.modules.items()):
    print(name, getattr(module, "__file__", None) or "-")
"""


def test_imports_come_from_the_package_or_its_dependencies(unpacked: Path) -> None:
    """Every library plugd imports, from /usr/lib/plugd or a Depends; never Blinka."""
    debian_python()
    lib = unpacked / "usr/lib/plugd"
    out = run(DEBIAN_PYTHON, "-I", "-B", "-c", IMPORTS, lib).stdout
    stdlib = run(DEBIAN_PYTHON, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
    from_elsewhere = {}
    for line in out.splitlines():
        name, file = line.split(" ", 1)
        if file == "-" or file.startswith((str(lib) + "/", stdlib.stdout.strip() + "/")):
            continue
        from_elsewhere[name.split(".")[0]] = file
    from_elsewhere.pop("_distutils_hack", None)  # Debian's setuptools hooks every interpreter
    assert set(from_elsewhere) <= {*FROM_DEBIAN.values(), *INDIRECT}, from_elsewhere
    assert not {line.split(" ")[0].split(".")[0] for line in out.splitlines()} & BLINKA


def test_simulated_plug_runs_from_the_unpacked_tree(unpacked: Path, tmp_path: Path) -> None:
    debian_python()
    www = unpacked / "usr/share/plugd/www"
    # The unpacked page is not in /usr/share/plugd/www, where find_www looks: name it.
    plug = PlugdProcess(tmp_path, program=unpacked / "usr/bin/plugd", node_id=4343, name="DebPlug",
                        config={"http": {"www_dir": str(www)}})
    try:
        with urllib.request.urlopen(plug.url, timeout=30) as page:
            # index.html, its links pointing at the build of the unpacked files.
            assert page.read() == Build(www).page()[1]
        status = run(unpacked / "usr/bin/plugctl", "--port", plug.http, "--token-file",
                     plug.state / "cli-token", "status", timeout=30).stdout
        assert "DebPlug" in status and f"plugd {__version__}" in status
    finally:
        code = plug.stop()
    assert code == 0, plug.tail()
    assert "plugd stopped" in plug.log.read_text()
    assert (plug.state / "things.json").is_file()


# --- maintainer scripts ---------------------------------------------------------------------

#: Stand-ins that record their calls: deb-systemd-helper answers was-enabled with 1 (the admin
#: disabled the unit) when STUB_DISABLED is set, else 0.
STUB = """#!/bin/sh
echo "${0##*/} $*" >>"$STUB_LOG"
[ "$1 $2" != "--quiet was-enabled" ] || [ -z "$STUB_DISABLED" ]
"""


def stubs(directory: Path, *names: str) -> Path:
    directory.mkdir()
    for name in names:
        (directory / name).write_text(STUB)
        (directory / name).chmod(0o755)
    return directory


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("dpkg --root and mount namespaces need root")


def hide_sysusers(group_tool: str, tmp_path: Path) -> dict[str, str]:
    """What hides this machine's systemd-sysusers where the scripts must do without it (an
    empty file that is not executable, bind-mounted over it); for systemd-sysusers, nothing."""
    found = shutil.which("systemd-sysusers")
    if group_tool == "systemd-sysusers":
        if found is None:
            pytest.skip("no systemd-sysusers (apt-get install systemd)")
        return {}
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux)")
    (tmp_path / "hidden").touch()
    return {"HIDE_WITH": str(tmp_path / "hidden"), "HIDE_FILE": str(Path(found).resolve())} if found else {}


#: Runs a command with $HIDE_FILE hidden, in a mount namespace of its own.
HIDDEN = 'mount --bind "$HIDE_WITH" "$HIDE_FILE" && exec "$@"'


def root_group(root: Path, name: str = "plugd") -> int | None:
    """A group's gid in that root's own /etc/group (never this machine's)."""
    path = root / "etc/group"
    entries = [line.split(":") for line in path.read_text().splitlines()] if path.exists() else []
    return next((int(entry[2]) for entry in entries if entry[0] == name), None)


def config_mode(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


@pytest.mark.parametrize("group_tool", ["systemd-sysusers", "groupadd"])
def test_maintainer_scripts_in_a_throwaway_root(deb: Path, tmp_path: Path, group_tool: str) -> None:
    """dpkg --root installs, reinstalls, removes and purges into a bare directory, running the
    scripts without chroot (DPKG_ROOT set): the groups (plugd, gpio, i2c) and the
    configuration's mode, every file dpkg lists gone on purge, enablement,
    byte-code, conffile and state. The group comes from systemd-sysusers --root, or where
    there is none (hidden here), from groupadd --prefix; never into this machine's groups."""
    needs_root()
    hiding = hide_sysusers(group_tool, tmp_path)
    hide = ["unshare", "--mount", "sh", "-c", HIDDEN, "hidden"] if hiding else []
    host_groups = {group.gr_name: group.gr_gid for group in grp.getgrall()}
    root = tmp_path / "root"
    for sub in ("info", "updates", "triggers"):
        (root / "var/lib/dpkg" / sub).mkdir(parents=True)
    for name in ("status", "available"):
        (root / "var/lib/dpkg" / name).touch()
    log = tmp_path / "calls"
    log.touch()
    # The host's systemd must never be asked anything: these record it if it were.
    path = f"{stubs(tmp_path / 'stubs', 'deb-systemd-invoke', 'systemctl')}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "STUB_LOG": str(log), **hiding}

    def dpkg(*args: str | Path) -> None:
        run(*hide, "dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
            "--force-confold", "--log=/dev/null", *args, env=env, stdin=subprocess.DEVNULL)

    def status() -> str:
        return run("dpkg", f"--root={root}", "--status", "plugd").stdout.split("Status: ")[1].split("\n")[0]

    lib, conffile = root / "usr/lib/plugd", root / "etc/plugd/plugd.toml"
    wants = {root / "etc/systemd/system/sockets.target.wants/plugd.socket",
             root / "etc/systemd/system/multi-user.target.wants/plugd.service"}
    state = root / "var/lib/private/plugd"

    dpkg("--install", deb)
    assert status() == "install ok installed"
    gid = root_group(root)
    assert gid is not None, "postinst adds the plugd group to the root's /etc/group"
    devices = {name: root_group(root, name) for name in DEVICE_GROUPS}
    assert None not in devices.values(), f"postinst adds gpio and i2c: {devices}"
    # dpkg's own list of what it installed: every file of it goes on purge.
    listed = [root / line.lstrip("/") for line in
              run("dpkg", f"--root={root}", "--listfiles", "plugd").stdout.splitlines()]
    assert root / "lib/udev/rules.d/60-plugd.rules" in listed
    assert {root / "lib/systemd/system" / dropin for dropin in DROP_INS} <= set(listed)
    assert config_mode(conffile) == (CONFIG_MODE, 0, gid), "root:plugd 0640"
    assert (lib / "plugd/__pycache__").is_dir(), "postinst byte-compiles the private directory"
    assert all(link.is_symlink() for link in wants), "postinst enables the socket and the service"
    # The state a DynamicUser= service leaves, and an admin's edit.
    state.mkdir(parents=True)
    (state / "things.json").write_text("{}")
    (root / "var/lib/plugd").symlink_to("private/plugd")
    conffile.write_text(conffile.read_text() + "\n# edited by the admin\n")
    # As a package without the group left it: readable by everyone.
    os.chown(conffile, 0, 0)
    conffile.chmod(0o644)
    for link in wants:  # as `systemctl disable plugd.socket plugd.service` leaves it
        link.unlink()

    dpkg("--install", deb)  # an upgrade in place: prerm upgrade, then postinst configure <old>
    assert "# edited by the admin" in conffile.read_text()
    assert root_group(root) == gid, "the group is kept, not made again"
    assert config_mode(conffile) == (CONFIG_MODE, 0, gid), "an upgrade tightens the old mode"
    assert not any(link.exists() for link in wants), "an upgrade keeps the admin's disable"

    # The admin's own mode, kept with dpkg-statoverride, wins over the postinst's.
    run("dpkg-statoverride", f"--root={root}", "--update", "--add", "root", "root", "0600",
        "/etc/plugd/plugd.toml")
    dpkg("--install", deb)
    assert config_mode(conffile) == (0o600, 0, 0)
    run("dpkg-statoverride", f"--root={root}", "--remove", "/etc/plugd/plugd.toml")

    dpkg("--remove", "plugd")
    assert status() == "deinstall ok config-files"
    assert not lib.exists(), "prerm drops the byte-code, so dpkg can remove the directory"
    assert "# edited by the admin" in conffile.read_text()
    assert (state / "things.json").is_file() and (root / "var/lib/plugd").is_symlink()

    dpkg("--purge", "plugd")
    assert "plugd" not in run("dpkg", f"--root={root}", "--get-selections").stdout
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.is_dir() and not str(p.relative_to(root)).startswith("var/lib/dpkg"))
    assert set(left) <= ACCOUNTS, "purge leaves no conffile, state, or enablement"
    assert root_group(root) == gid, "the group stays, as Debian keeps every group"
    assert {name: root_group(root, name) for name in DEVICE_GROUPS} == devices
    assert not [path for path in listed if path.is_symlink() or path.is_file()]
    assert not [path for path in listed if path.is_dir() and "plugd" in path.name]
    assert not (root / "etc/plugd").exists() and not (root / "var/lib/plugd").is_symlink()
    assert log.read_text() == ""
    assert {group.gr_name: group.gr_gid for group in grp.getgrall()} == host_groups


#: Runs the scripts where systemd seems to run: /run/systemd/system exists, in a mount namespace
#: whose /run, /var/lib (and /usr/lib/plugd, if this machine has one) are empty tmpfs, and whose
#: /etc is an overlay on a tmpfs: the group and the configuration are made there, in the
#: machine's own /etc as far as the scripts can tell, and vanish with the namespace. It has the
#: package's sysusers.d file, no plugd group yet, and a configuration readable by everyone.
NAMESPACE = """
set -e
mount -t tmpfs plugd-test /run
mkdir -p /run/systemd/system
mount -t tmpfs plugd-test /var/lib
[ ! -d /usr/lib/plugd ] || mount -t tmpfs plugd-test /usr/lib/plugd
mount -t tmpfs plugd-test "$SCRATCH"
mkdir "$SCRATCH/upper" "$SCRATCH/work"
mount -t overlay plugd-test -o "lowerdir=/etc,upperdir=$SCRATCH/upper,workdir=$SCRATCH/work" /etc
[ -z "${HIDE_FILE:-}" ] || mount --bind "$HIDE_WITH" "$HIDE_FILE"
for file in /etc/group /etc/gshadow; do
    [ ! -e "$file" ] || sed -i -e '/^plugd:/d' -e '/^gpio:/d' -e '/^i2c:/d' "$file"
done
rm -rf /etc/plugd
mkdir -p /etc/plugd /etc/sysusers.d
cp "$SYSUSERS" /etc/sysusers.d/plugd.conf
cp "$DEVICES" /etc/sysusers.d/plugd-devices.conf
echo '# the configuration' >/etc/plugd/plugd.toml
chmod 644 /etc/plugd/plugd.toml
mkdir -p /var/lib/private/plugd
ln -s private/plugd /var/lib/plugd
step() { echo "== $*" >>"$STUB_LOG"; "$CONTROL/$@"; }
state() {
    if [ -e /var/lib/private/plugd ] || [ -L /var/lib/plugd ]; then echo "state kept"
    else echo "state gone"; fi >>"$STUB_LOG"
}
config() {
    stat -c 'config %a %U:%G' /etc/plugd/plugd.toml >>"$STUB_LOG"
}
group() {
    for name in plugd gpio i2c; do
        if getent group $name >/dev/null; then echo "group $name"; else echo "no $name"; fi
    done >>"$STUB_LOG"
}
step postinst configure
config
step prerm upgrade 0.0.1
STUB_DISABLED=1 step postinst configure 0.0.1
config
step prerm remove
step postrm remove
state
step postrm purge
state
group
"""

#: addgroup, when systemd-sysusers is hidden: recorded, and done with groupadd (which adduser's
#: addgroup calls too), into the namespace's /etc.
ADDGROUP = """#!/bin/sh
echo "${0##*/} $*" >>"$STUB_LOG"
[ "$1" = --system ] && [ $# = 2 ] && exec groupadd --system "$2"
"""


@pytest.mark.parametrize("group_tool", ["systemd-sysusers", "addgroup"])
def test_maintainer_scripts_with_systemd_running(control: Path, tmp_path: Path,
                                                 group_tool: str) -> None:
    """The branch a Pi takes: the group made by systemd-sysusers, or addgroup where there is
    none (hidden here), the configuration given to it; units started, stopped and forgotten
    through the helpers."""
    needs_root()
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux)")
    log = tmp_path / "calls"
    bin_dir = stubs(tmp_path / "stubs", "deb-systemd-helper", "deb-systemd-invoke", "systemctl",
                    "python3", "udevadm")
    (tmp_path / "scratch").mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log),
           "CONTROL": str(control), "SCRATCH": str(tmp_path / "scratch"),
           "SYSUSERS": str(PACKAGING / "sysusers.conf"), "DEVICES": str(PACKAGING / "devices.conf")}
    env.pop("DPKG_ROOT", None)
    env.pop("HIDE_FILE", None)
    env.update(hide_sysusers(group_tool, tmp_path))
    made: list[str] = []
    if group_tool == "addgroup":
        (bin_dir / "addgroup").write_text(ADDGROUP)
        (bin_dir / "addgroup").chmod(0o755)
        made = [f"addgroup --system {name}" for name in ("plugd", *DEVICE_GROUPS)]
    done = subprocess.run(["unshare", "--mount", "sh", "-c", NAMESPACE], env=env,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"no mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    steps: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        if line.startswith("== "):
            current = steps.setdefault(line[3:], [])
        else:
            current.append(line)
    units = " ".join(sorted(repo_units(), key=lambda unit: not unit.endswith(".socket")))
    enable = [f"deb-systemd-helper {verb} {unit}" for unit in units.split()
              for verb in ("--quiet was-enabled", "enable")]
    keep = [f"deb-systemd-helper {verb} {unit}" for unit in units.split()
            for verb in ("--quiet was-enabled", "update-state")]
    compile_ = "python3 -m compileall -q -d /usr/lib/plugd /usr/lib/plugd"
    reload, start, stop = ("systemctl --system daemon-reload", f"deb-systemd-invoke start {units}",
                           f"deb-systemd-invoke stop {units}")
    config = f"config {CONFIG_MODE:o} root:plugd"  # the group existed before chgrp named it
    # The udev rule read again, and the GPIO and I2C devices already there given their group.
    udev = ["udevadm control --reload-rules",
            "udevadm trigger --action=change --subsystem-match=gpio "
            "--subsystem-match=bcm2835-gpiomem --subsystem-match=i2c-dev"]
    assert steps == {
        "postinst configure": [*made, compile_, *enable, reload, *udev, start, config],
        "prerm upgrade 0.0.1": [stop],
        # The group is there: not made again. The admin's "disabled" stays.
        "postinst configure 0.0.1": [compile_, *keep, reload, *udev, start, config],
        "prerm remove": [stop],
        "postrm remove": [reload, udev[0], "state kept"],
        # Every group stays, as Debian keeps them.
        "postrm purge": [f"deb-systemd-helper purge {units}", reload, "state gone",
                         "group plugd", "group gpio", "group i2c"],
    }


# --- apt itself, in a fresh Debian ----------------------------------------------------------

#: What an install and purge may leave in a fresh Debian: the groups' files and their backups,
#: and adduser's lock in /run (a tmpfs on a booted system).
LEFT_BY_ACCOUNTS = {*ACCOUNTS, "run/adduser"}
#: Not compared before and after: apt's and dpkg's own records, logs, caches, the kernel's.
UNCOMPARED = ("proc", "sys", "dev", "tmp", "var/cache", "var/lib/apt", "var/lib/dpkg", "var/log")
#: Stands in for the Raspberry Pi OS package the .deb depends on, which Debian lacks.
STAND_IN = """Package: python3-rpi-lgpio
Version: 0~stand-in
Architecture: all
Maintainer: plugd developers <plugd@users.noreply.github.com>
Description: stand-in for Raspberry Pi OS's python3-rpi-lgpio, for plugd's tests
"""


def snapshot(root: Path) -> set[str]:
    """Every path under root, directories too, but the uncompared ones."""
    found = set()
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if str(here / d) not in UNCOMPARED]
        found |= {str(here / name) for name in [*dirs, *files]}
    return found


@pytest.mark.timeout(900)  # debootstrap and apt download ~40 MB: a minute or more
def test_apt_installs_and_purges_it_in_a_fresh_debian(deb: Path, fields: dict[str, str],
                                                      tmp_path: Path) -> None:
    """As a person does it: `apt install ./plugd_*.deb` in a fresh Debian of this machine's
    release (debootstrap's minbase, without systemd: the groups come from addgroup), plugd
    runs there, and `apt purge plugd` takes every file it brought; the groups stay."""
    needs_root()
    if shutil.which("debootstrap") is None:
        pytest.skip("no debootstrap (apt-get install debootstrap)")
    release = dict(line.split("=", 1) for line in
                   Path("/etc/os-release").read_text().splitlines() if "=" in line)
    if release.get("ID") != "debian" or not release.get("VERSION_CODENAME"):
        pytest.skip(f"not Debian: {release.get('PRETTY_NAME')}")
    root = tmp_path / "debian"
    run("debootstrap", "--variant=minbase", release["VERSION_CODENAME"].strip('"'), root,
        timeout=900)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    stand_in = tmp_path / "stand-in"
    (stand_in / "DEBIAN").mkdir(parents=True)
    (stand_in / "DEBIAN/control").write_text(STAND_IN)
    run("dpkg-deb", "--root-owner-group", "--build", stand_in, root / "tmp/stand-in.deb")
    shutil.copy(deb, root / "tmp" / deb.name)

    def inside(*args: str) -> str:
        return run("chroot", root, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                   "DEBIAN_FRONTEND=noninteractive", *args, timeout=600,
                   stdin=subprocess.DEVNULL).stdout

    inside("dpkg", "--install", "/tmp/stand-in.deb")
    inside("apt-get", "update", "-q")
    needed = [group[0].split()[0] for group in depends(fields)]  # the stand-in is there
    inside("apt-get", "install", "-y", "-q", "--no-install-recommends", *needed)
    before = snapshot(root)

    inside("apt-get", "install", "-y", "-q", f"/tmp/{deb.name}")
    assert inside("plugd", "--version").strip() == f"plugd {__version__}"
    assert "configuration OK (/etc/plugd/plugd.toml)" in inside("plugd", "--check-config")
    assert inside("stat", "-c", "%a %U:%G", "/etc/plugd/plugd.toml").split() == ["640", "root:plugd"]
    groups = {name: root_group(root, name) for name in ("plugd", *DEVICE_GROUPS)}
    assert None not in groups.values(), groups
    assert (root / "lib/udev/rules.d/60-plugd.rules").is_file()  # /lib may be usr/lib's link
    assert "usr/lib/plugd/plugd/__pycache__" in snapshot(root) - before, "postinst compiled it"

    inside("apt-get", "purge", "-y", "-q", "plugd")
    after = snapshot(root)
    assert after - before <= LEFT_BY_ACCOUNTS, sorted(after - before - LEFT_BY_ACCOUNTS)
    assert before - after <= {"run/adduser"}, sorted(before - after)
    assert {name: root_group(root, name) for name in groups} == groups, "the groups stay"
