"""The lab as the most trusted fidelity: it is asked, never computed.

When acquisition picks the experiment fidelity for a composition, the loop files a
:class:`~state.schema.LabRequest` through :meth:`ExperimentOracle.request`; the lab's results
come back with ``amloop inject`` and close the request. The loop never waits for the lab.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from amloop.oracles.base import FidelitySource, OracleOptions, OracleSetupError
from amloop.state.schema import LabRequest
from amloop.state.units import UnitError, canonical_unit


def _names(value: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]``; lists pass through."""
    return (
        [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, str)
        else value
    )


class ExperimentOptions(OracleOptions):
    """Options of the ``experiment`` oracle."""

    properties: Annotated[list[str], BeforeValidator(_names)] = Field(
        description='what the lab measures: a list or `"overpotential,current_density"` '
        "(known properties)"
    )
    lab: str = Field("", description="who measures (written into every request)")
    method: str = Field("", description='how (e.g. `"LSV, 1 M KOH, 10 mA/cm2"`)')
    turnaround_days: float = Field(14.0, ge=0, description="typical time to a result (days)")


class ExperimentOracle(FidelitySource):
    """Experimental measurements of ``properties`` (top fidelity, 1.0 by default).

    Args:
        name: Name of this source in the campaign.
        fidelity: Fidelity in [0, 1]; experiments are normally the highest.
        timeout_s: Unused by the lab (kept for a uniform configuration).
        **options: :class:`ExperimentOptions`.
    """

    type_name: ClassVar[str] = "experiment"
    Options: ClassVar[type[ExperimentOptions]] = ExperimentOptions

    default_fidelity: ClassVar[float] = 1.0
    options: ExperimentOptions

    def __init__(self, **settings: Any):
        """``name``, ``fidelity``, ``timeout_s`` and the :class:`ExperimentOptions`."""
        super().__init__(**settings)
        self.measured = list(self.options.properties)
        if not self.measured:
            raise OracleSetupError(
                "an experiment oracle needs `properties` (what the lab measures)"
            )
        try:
            self.units = {prop: canonical_unit(prop) for prop in self.measured}
        except UnitError as exc:
            raise OracleSetupError(str(exc)) from None

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
                **self.options.parameters(exclude={"properties"}),
            },
            iteration=iteration,
        )
