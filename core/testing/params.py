"""pytest glue: the conformance checks as parameters and ready-made test functions.

pytest is imported inside the functions, so importing this module does not need pytest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .. import registries
from .conformance import CHECKS, run_check, skip_reason, tuner_instance
from .models import MODEL_CASES, ModelCase, model_case


@dataclass(frozen=True)
class ConformanceCase:
    """One (tuner config, model, check) triple; ``run()`` runs it, raising on failure."""

    tuner: str
    model: str
    check: str
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return {**self.overrides, "tuner": self.tuner}

    @property
    def case(self) -> ModelCase:
        return model_case(self.model)

    @property
    def id(self) -> str:
        """``tuner-model-check``; non-default fields follow the tuner, e.g. ``lora[bias=all]-gpt2-disable``."""
        fields = ",".join(f"{k}={_short(v)}" for k, v in sorted(self.overrides.items()))
        return f"{self.tuner}{f'[{fields}]' if fields else ''}-{self.model}-{self.check}"

    def skip_reason(self) -> str | None:
        return skip_reason(tuner_instance(self.config), self.case, self.check, not self.overrides)

    def run(self) -> None:
        run_check(self.check, self.config, self.case)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."


def conformance_cases(
    tuners: Iterable[str] | None = None,
    *,
    models: Iterable[str] | None = None,
    checks: Iterable[str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> list[ConformanceCase]:
    """Every (tuner, model, check) triple; ``None`` means all registered tuners / models / checks.

    ``config`` holds extra fields for the tuner config (default: the tuner's defaults).
    """
    tuner_names = list(tuners) if tuners is not None else registries.tuners.names()
    for name in tuner_names:
        registries.tuners.get(name)  # an unknown or broken plugin fails here, with its message
    model_names = list(models) if models is not None else list(MODEL_CASES)
    check_names = list(checks) if checks is not None else list(CHECKS)
    for c in check_names:
        if c not in CHECKS:
            raise KeyError(f"unknown check '{c}'; known: {', '.join(CHECKS)}")
    overrides = dict(config or {})
    return [ConformanceCase(t, m, c, overrides) for t in tuner_names for m in model_names for c in check_names]


def conformance_params(tuners: Iterable[str] | None = None, **kwargs: Any) -> list[Any]:
    """``conformance_cases`` as ``pytest.param``s with readable ids; inapplicable ones are skipped."""
    import pytest

    out = []
    for case in conformance_cases(tuners, **kwargs):
        reason = case.skip_reason()
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def conformance_tests(tuner: str, **kwargs: Any) -> Callable[[ConformanceCase], None]:
    """A parametrised pytest test function running every check of ``tuner``.

    Assign it to a module-level name that starts with ``test``; ``kwargs`` as for ``conformance_cases``.
    """
    import pytest

    @pytest.mark.parametrize("conformance_case", conformance_params([tuner], **kwargs))
    def test_conformance(conformance_case: ConformanceCase) -> None:
        conformance_case.run()

    return test_conformance
