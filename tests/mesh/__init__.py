"""plugd daemons and ESP8266-format nodes in network namespaces, on one bridge, by real broadcast."""
