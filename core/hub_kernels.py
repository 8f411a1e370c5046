"""No executable code from the Hugging Face Hub at import or load unless the user opts in.

Two libraries under swiftune fetch native kernels from the Hub on their own:

* bitsandbytes (imported by transformers' ``Trainer`` through peft) calls
  ``kernels.get_kernel("kernels-community/quantization-bitsandbytes")`` *at import* on CPUs with
  AVX512-BF16 (``kernels-community/bitsandbytes-mps`` on Apple GPUs): online it downloads and loads a
  compiled library, offline it prints a "publisher trust check" warning and a failure warning.
* transformers loads models with ``use_kernels`` on by default and swaps layers for Hub kernels.

Both are switched off with the libraries' own environment switches, set here before they are
imported and only where the user has not set them: ``USE_HUB_KERNELS=NO`` (transformers) and
``LOCAL_KERNELS`` mapping the import-time repositories to a path that cannot exist, so the
``kernels`` package resolves them locally, finds nothing and never contacts the Hub; bitsandbytes
then uses its built-in CPU code. Opt in with ``SWIFTUNE_HUB_KERNELS=1``.
"""

from __future__ import annotations

import logging
import os

#: Set to 1 to let bitsandbytes / transformers download kernels from the Hub as they would by default.
HUB_KERNELS_ENV = "SWIFTUNE_HUB_KERNELS"
#: Kernel repositories bitsandbytes fetches while it is being imported.
IMPORT_TIME_KERNELS = ("kernels-community/quantization-bitsandbytes", "kernels-community/bitsandbytes-mps")
#: A path below a file (the null device) can never be a folder: the local lookup always fails.
NO_LOCAL_KERNEL = os.path.join(os.devnull, "swiftune-hub-kernels-off")
#: bitsandbytes' loggers that report the (now expected) failed lookup as a warning.
_QUIET_LOGGERS = ("bitsandbytes.backends.cpu.ops", "bitsandbytes.backends.mps.ops")
_TRUE = {"1", "true", "yes", "on"}


def hub_kernels_allowed() -> bool:
    """Whether the user opted in to kernels downloaded from the Hub (``SWIFTUNE_HUB_KERNELS=1``)."""
    return os.environ.get(HUB_KERNELS_ENV, "").strip().lower() in _TRUE


def keep_hub_kernels_off() -> None:
    """Set the libraries' switches (unless the user set them or opted in); idempotent."""
    if hub_kernels_allowed():
        return
    os.environ.setdefault("USE_HUB_KERNELS", "NO")
    if "LOCAL_KERNELS" not in os.environ:
        os.environ["LOCAL_KERNELS"] = ":".join(f"{repo}={NO_LOCAL_KERNEL}" for repo in IMPORT_TIME_KERNELS)
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
