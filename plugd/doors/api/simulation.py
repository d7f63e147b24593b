"""Commands of a simulated plug only: the load on its mains, broken chips, a hung loop.

The daemon adds `COMMANDS` to what it answers only under --simulate; nothing
else imports this module, so production code never loads the chips' stand-ins.
"""

from __future__ import annotations

import time
from typing import Any

from plugd.core.model import describe, read_bool, read_float
from plugd.doors.api.base import Api, Handler, command
from plugd.errors import ValidationError
from plugd.hardware.sim.ads1115 import FAULTS as ADC_FAULTS

#: The simulation's commands, answered besides the common ones under --simulate.
COMMANDS: dict[str, Handler] = {}


@command("simulate_load", COMMANDS)
async def _simulate_load(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Only under --simulate: the load plugged into the simulated plug, in W."""
    simulation = api.host.simulation
    if simulation is None:
        raise ValidationError("command", "simulate_load works only under --simulate")
    watts = read_float(msg, "watts", "message")
    if not 0 <= watts <= 10_000:
        raise ValidationError("message.watts", f"must be between 0 and 10000 W, got {watts:g}")
    simulation.mains.load_watts = watts
    return api.answer("response_simulate_load", success=True, watts=watts)


@command("simulate_fault", COMMANDS)
async def _simulate_fault(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Only under --simulate: break a chip, to see what the plug and its page do.

    `{"chip": "adc", "fault": "nack" | "gone" | "garbage" | "stuck" | null}` or
    `{"chip": "display", "fault": true | false}`.
    """
    simulation = api.host.simulation
    if simulation is None:
        raise ValidationError("command", "simulate_fault works only under --simulate")
    chip, fault = msg.get("chip"), msg.get("fault")
    if chip == "adc":
        if fault not in ADC_FAULTS:
            raise ValidationError("message.fault", f"expected one of {list(ADC_FAULTS)}, "
                                  f"got {describe(fault)}")
        simulation.adc.fault = fault
    elif chip == "display":
        simulation.gpio.fail = read_bool(msg, "fault", "message")
    else:
        raise ValidationError("message.chip", f"expected 'adc' or 'display', got {describe(chip)}")
    return api.answer("response_simulate_fault", success=True, chip=chip, fault=fault)


@command("simulate_hang", COMMANDS)
async def _simulate_hang(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Only under --simulate: block the event loop, as a bug would, to see the watchdog act."""
    if api.host.simulation is None:
        raise ValidationError("command", "simulate_hang works only under --simulate")
    seconds = read_float(msg, "seconds", "message")
    if not 0 < seconds <= 60:
        raise ValidationError("message.seconds", f"must be between 0 and 60, got {seconds:g}")
    time.sleep(seconds)  # on purpose: nothing else runs meanwhile
    return api.answer("response_simulate_hang", success=True)
