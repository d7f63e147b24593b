"""plugd: a Raspberry Pi smart-plug daemon that meshes with ESP8266 smart plugs."""

__version__ = "0.1.0"
