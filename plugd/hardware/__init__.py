"""The chips: relay pin, ADC, display. Each takes its pins or bus from a factory passed in."""

from __future__ import annotations

from gpiozero import Factory


def pin_factory(simulate: bool) -> Factory | None:
    """gpiozero's MockFactory when simulating; None lets gpiozero pick the board's own."""
    if not simulate:
        return None
    from gpiozero.pins.mock import MockFactory

    return MockFactory()
