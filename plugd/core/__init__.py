"""The pure core: the wire codec, the mesh registry, recipes, the relay's authority, metering,
protection, the signed mesh and the plug core. Nothing here opens a socket, starts a thread or
reads a clock: time is passed in, so every decision can be replayed in a test."""
