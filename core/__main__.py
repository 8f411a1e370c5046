"""``python -m swiftune`` (also what ``torchrun -m swiftune`` runs)."""

from .cli import main

raise SystemExit(main())
