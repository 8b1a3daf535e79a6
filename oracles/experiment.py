"""The lab as the most trusted fidelity: it is asked, never computed.

When acquisition picks the experiment fidelity for a composition, the loop files a
:class:`~state.schema.LabRequest` through :meth:`ExperimentOracle.request`; the lab's results
come back with ``amloop inject`` and close the request. The loop never waits for the lab.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from amloop.oracles.base import FidelitySource, OracleSetupError
from amloop.state.schema import LabRequest
from amloop.state.units import UnitError, canonical_unit


class ExperimentOracle(FidelitySource):
    """Experimental measurements of ``properties`` (top fidelity, 1.0 by default).

    Args:
        name: Name of this source in the campaign.
        fidelity: Fidelity in [0, 1]; experiments are normally the highest.
        timeout_s: Unused by the lab (kept for a uniform configuration).
        properties: Properties the lab measures, e.g. ``["overpotential"]`` or
            ``"overpotential,current_density"``.
        lab: Who measures (written into every request).
        method: How they measure (e.g. ``"LSV, 1 M KOH, 10 mA/cm2"``).
        turnaround_days: Typical time to a result (days), shown with pending requests.
    """

    type_name: ClassVar[str] = "experiment"

    def __init__(
        self,
        *,
        name: str | None = None,
        fidelity: float = 1.0,
        timeout_s: float = 600.0,
        properties: list[str] | str,
        lab: str = "",
        method: str = "",
        turnaround_days: float = 14.0,
    ):
        super().__init__(name=name, fidelity=fidelity, timeout_s=timeout_s)
        names = properties.split(",") if isinstance(properties, str) else list(properties)
        self.measured = [p.strip() for p in names if p.strip()]
        if not self.measured:
            raise OracleSetupError(
                "an experiment oracle needs `properties` (what the lab measures)"
            )
        try:
            self.units = {prop: canonical_unit(prop) for prop in self.measured}
        except UnitError as exc:
            raise OracleSetupError(str(exc)) from None
        self.lab, self.method, self.turnaround_days = lab, method, turnaround_days

    def request(
        self,
        composition: Mapping[str, float],
        *,
        reason: str,
        decision: Mapping[str, Any] | None = None,
        iteration: int | None = None,
    ) -> LabRequest:
        """A lab request to make ``composition`` and measure this oracle's properties.

        Args:
            composition: Atomic fractions to synthesise.
            reason: Why it was chosen (shown to the lab).
            decision: Acquisition numbers behind the choice (value, surrogate mean/σ).
            iteration: Loop iteration that asked.
        """
        return LabRequest(
            composition=dict(composition),
            properties=self.measured,
            oracle=self.name,
            reason=reason,
            decision={
                **(decision or {}),
                "lab": self.lab,
                "method": self.method,
                "turnaround_days": self.turnaround_days,
            },
            iteration=iteration,
        )
