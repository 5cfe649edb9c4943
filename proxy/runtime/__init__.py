"""Process management: the server, the worker supervisor and the demo stack."""
