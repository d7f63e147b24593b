"""Coverage-guided fuzzing of plugd's three input doors: the UDP decoder, the WebSocket
commands and the configuration loader. `python -m fuzz` runs the harnesses in turn."""
