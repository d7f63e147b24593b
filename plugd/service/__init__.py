"""The service: configuration, the state directory, systemd, the meter's glue and the daemon
that wires the core, the hardware and the doors together."""
