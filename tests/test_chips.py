"""The chip facts against their datasheets, and the one place each is written."""

import re
from pathlib import Path

from plugd.chips import ACS712_MODELS, ADS1115_DATA_RATES, ADS1115_FULL_SCALES, ADS1115_RANGES

ROOT = Path(__file__).resolve().parent.parent


def test_the_ads1115_ranges_are_4_096_v_times_the_pga_step():
    # TI SBAS444, table 3: FSR = ±4.096 V / gain, gains 2/3, 1, 2, 4, 8, 16
    assert ADS1115_FULL_SCALES == (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)
    for volts, pga in ADS1115_RANGES.items():
        assert round(4.096 / pga.gain, 3) == volts == pga.volts
    assert [r.label for r in ADS1115_RANGES.values()] == ["2/3", "1", "2", "4", "8", "16"]
    assert ADS1115_DATA_RATES == (8, 16, 32, 64, 128, 250, 475, 860)


def test_the_acs712_models_are_the_datasheets():
    assert {m: (s.volts_per_amp, s.max_amps) for m, s in ACS712_MODELS.items()} == {
        "ACS712-05B": (0.185, 5.0), "ACS712-20A": (0.100, 20.0), "ACS712-30A": (0.066, 30.0)}


def test_no_module_writes_a_chip_fact_again():
    """The tables' numbers appear in plugd only in plugd/chips.py."""
    facts = [r"6\.144", r"0\.185\b", r"\b475\b"]
    for path in (ROOT / "plugd").rglob("*.py"):
        if path.name == "chips.py":
            continue
        text = path.read_text()
        for fact in facts:
            assert not re.search(fact, text), f"{path.relative_to(ROOT)} repeats {fact}"
