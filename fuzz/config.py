"""Fuzz harness for the configuration door: `config.parse` on any text.

Any text gives a Config whose numbers are all finite, or a ConfigError that
names a key (or says the text is not TOML); nothing else may escape.
"""

from __future__ import annotations

import math
import sys
from dataclasses import fields, is_dataclass

import atheris

# tomllib too: the fuzzer learns TOML's shapes from its branches.
with atheris.instrument_imports(include=["plugd", "tomllib"]):
    import plugd.core.metering  # noqa: F401  (imported lazily by the front-end check)
    from plugd.errors import ConfigError
    from plugd.service.config import Config, parse


def check_parse(text: str, simulate: bool) -> None:
    """Parse `text`; raise AssertionError when the outcome breaks the loader's promise."""
    try:
        config = parse(text, simulate=simulate)
    except ConfigError as err:
        assert str(err).strip(), "a ConfigError without a message"
        return
    assert isinstance(config, Config) and config.simulated == simulate
    for section in fields(config):
        table = getattr(config, section.name)
        for name, value in (vars(table) if is_dataclass(table) else {}).items():
            assert not isinstance(value, float) or math.isfinite(value), f"{section.name}.{name}"


def one_input(data: bytes) -> None:
    """One configuration text: a Config or a ConfigError naming the key."""
    provider = atheris.FuzzedDataProvider(data)
    simulate = provider.ConsumeBool()
    raw = provider.ConsumeBytes(provider.remaining_bytes())
    check_parse(raw.decode("utf-8", "replace"), simulate)


def main() -> None:
    """Fuzz the configuration loader."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
