"""Replay: recorded requests (the proxy's capture, HAR, GoReplay, the store) sent through the live data plane."""
