"""Every error plugd raises on purpose, under one base class.

The codec, the configuration loader and the API validation raise these and
nothing else, so a caller (or a fuzz test) can rely on one rule: bad input
gives a PlugdError whose message names what was wrong.
"""


class PlugdError(Exception):
    """Base of all documented plugd errors."""


class WireError(PlugdError):
    """A UDP datagram that cannot be read as a mesh packet."""


class ValidationError(PlugdError):
    """A value that breaks a rule; `field` names where it sits (`recipe.relation`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


class ConfigError(ValidationError):
    """A configuration file or option that plugd refuses to run with."""


class StoreError(PlugdError):
    """State that could not be written to the state directory."""


class HardwareError(PlugdError):
    """A chip or pin that did not do what it was asked."""
