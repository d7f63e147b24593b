"""The doors and outlets: the HTTP and WebSocket server with its API, logins, mDNS and the
mesh's UDP endpoint. They feed inputs to the core and carry its changes out."""
