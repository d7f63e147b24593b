"""In strict mode (CI, and `make test` as root) a skip is a failure; otherwise it stays a skip."""

import subprocess
import sys

import pytest

PROBE = '''
import pytest

def test_a_harness_that_cannot_run():
    pytest.skip("no harness here")
'''


@pytest.mark.parametrize("strict, outcome", [("1", "1 failed"), ("0", "1 skipped")])
def test_a_skip_fails_only_in_strict_mode(tmp_path, strict, outcome):
    (tmp_path / "test_probe.py").write_text(PROBE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.conftest", str(tmp_path / "test_probe.py")],
                          capture_output=True, text=True, env={"PLUGD_STRICT_SKIPS": strict,
                                                               "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert outcome in done.stdout, done.stdout + done.stderr
