"""plugd's benchmark suite: control latency, ingest rate and memory footprint.

`python -m bench` runs them all and writes a Markdown table to
bench/results/latest.md; `python -m bench.<name>` runs one. Every datagram
goes to 127.0.0.1 only, to ports picked free at run time, so a plugd running
on the usual ports is left alone.
"""
