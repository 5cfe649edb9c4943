"""What the web report and /api/v1 read the report through: the store, the run-time primaries, the criteria."""

from __future__ import annotations

from diffs.readiness import Criteria
from diffs.report import Report, Window
from diffs.storage import Store, queries
from proxy.config import Settings
from proxy.control.promotion import PrimaryState


class ReportContext:
    """The store, the run-time primaries and the readiness criteria the report pages and the API read."""

    def __init__(
        self, settings: Settings, store: Store, state: PrimaryState, *, criteria: Criteria | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.criteria = criteria or Criteria()

    @property
    def services(self) -> list[str]:
        return list(self.state.services)

    async def report(self, window: Window, service: str | None = None, criteria: Criteria | None = None) -> Report:
        return await queries.load_report(
            self.store,
            window=window,
            criteria=criteria or self.criteria,
            noise=self.settings.noise,
            primaries=self.state.snapshot(),
            service=service,
            services=self.services,
        )
