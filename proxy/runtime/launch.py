"""`shadowdiff proxy`'s entry point: one server in this process, or a supervisor of N workers (as uvicorn's `main`
picks a supervisor; neither imports this module)."""

from __future__ import annotations

from collections.abc import Mapping

from proxy.config import Settings, configure_logging
from proxy.runtime.server import ShadowdiffServer, event_loop, handle_signals
from proxy.runtime.supervisor import Supervisor


def run(settings: Settings, *, environ: Mapping[str, str] | None = None) -> None:
    """The `shadowdiff proxy` entry point: blocks until SIGINT/SIGTERM; ShadowdiffError on failure to start."""
    configure_logging(settings)
    if settings.workers > 1:
        Supervisor(settings, environ=environ).run()
        return
    server = ShadowdiffServer(settings, environ=environ)

    async def main() -> None:
        uninstall = handle_signals(server.request_exit)
        try:
            await server.serve()
        finally:
            uninstall()

    with event_loop() as runner:
        runner.run(main())
