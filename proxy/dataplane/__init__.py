"""The data plane: the ASGI app that answers from the primary, mirrors to the shadow and hands each exchange on."""
