"""Crash safety: real plugd processes killed, filled up and cut off, and what they kept.

A package of its own, apart from the unit tests, because the harness serves
two callers: the suite's short test and `python -m tests.crash`, the long run.
"""
