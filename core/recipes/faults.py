"""Deterministic fault injection for the crash-and-resume tests.

``SWIFTUNE_FAULT=after_save:20`` kills the process (SIGKILL: no cleanup, no ``finally``) right
after checkpoint 20 is published; ``before_publish:20`` kills it after checkpoint 20 is fully
staged but before it is published. Several points are separated by commas. Unset, it does nothing.
"""

from __future__ import annotations

import os
import signal
import sys

FAULT_ENV = "SWIFTUNE_FAULT"


def fault_point(point: str, step: int) -> None:
    """Kill this process here if ``SWIFTUNE_FAULT`` names ``point:step``."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    if f"{point}:{step}" in {s.strip() for s in spec.split(",")}:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
