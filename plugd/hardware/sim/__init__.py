"""Chips simulated at the register, with the mains and the sensor they measure."""
