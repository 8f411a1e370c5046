"""Image datasets for text-to-image and image classification: rows naming an image file, or a
folder of class subfolders.

Rows come through a registered ``DatasetAdapter`` (``image-caption`` / ``image-text`` give
``image_caption`` examples, ``image-label`` gives ``image_classification`` ones); an image path is
taken relative to the data file's folder. Every image is opened once while loading, so a missing
or undecodable file fails at start with the file, line and path, not mid-training (or, with
``skip_bad_rows``, is skipped and counted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .convert import check_example, detect_adapter, get_adapter
from .errors import DataError
from .readers import RawRows
from .spec import parse_spec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
#: The adapters of each image kind, for detection among them alone (other adapters also match "text").
ADAPTERS_OF = {"image_caption": ("image-caption", "image-text"), "image_classification": ("image-label",)}


@dataclass
class ImageRows:
    """Loaded image examples: ``image`` is an absolute path; ``text`` or ``label`` beside it."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)


def open_image(path: str | Path, where: str = "", given: str | None = None) -> Any:
    """The image as an RGB ``PIL.Image``; a missing or undecodable file is a ``DataError`` naming
    the row (``where``), the path as written (``given``) and the file it resolved to."""
    from PIL import Image, UnidentifiedImageError

    prefix = f"{where}: " if where else ""
    shown = f"image '{given}' ({path})" if given and str(given) != str(path) else f"image '{path}'"
    if not Path(path).is_file():
        raise DataError(f"{prefix}{shown}: no such file")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{prefix}{shown}: cannot decode it as an image ({type(exc).__name__}: {exc})") from None


def is_image_folder(path: Path) -> bool:
    """A folder whose subfolders hold image files (one subfolder per class) and no data files."""
    if not path.is_dir():
        return False
    return any(sub.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in sub.iterdir()) for sub in path.iterdir())


def read_image_folder(path: Path, skip_bad_rows: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """``{"image", "label"}`` examples of a class-subfolder tree: the subfolder name is the label."""
    examples, skipped = [], []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            try:
                open_image(file, where=str(path))
            except DataError as exc:
                if not skip_bad_rows:
                    raise DataError(f"{exc}; fix or remove the file, or pass --skip-bad-rows") from None
                skipped.append(str(exc))
                continue
            examples.append({"image": str(file.resolve()), "label": sub.name})
    if not examples:
        raise DataError(f"image folder '{path}' has no readable images in class subfolders")
    return examples, skipped


def _base_folder(raw: RawRows) -> Path:
    """Where relative image paths of ``raw`` start: the data file's folder, or a dataset folder itself."""
    origin = Path(raw.origin)
    if not origin.exists():  # "folder:split"
        origin = Path(raw.origin.rsplit(":", 1)[0])
    return origin if origin.is_dir() else origin.parent


def convert_image_rows(raw: RawRows, kind: str, adapter: str | None, columns: dict[str, str],
                       skip_bad_rows: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows -> ``kind`` examples with absolute, decodable image paths; errors name file, line and path."""
    cols = {columns.get(c, c) for c in raw.columns()}
    if adapter is None:
        fits = [n for n in ADAPTERS_OF[kind] if get_adapter(n).matches(cols)]
        adapter = fits[0] if len(fits) == 1 else detect_adapter(cols, raw.origin)
    impl = get_adapter(adapter)
    if impl.produces != kind:
        raise DataError(f"{raw.origin}: adapter '{adapter}' gives {impl.produces} examples; this task needs {kind} "
                        f"(adapters: {', '.join(ADAPTERS_OF[kind])})")
    base = _base_folder(raw)
    examples, skipped = [], list(raw.bad)
    for i, row in enumerate(raw.rows):
        where = raw.where(i)
        try:
            row = {columns.get(k, k): v for k, v in row.items()}
            example = dict(impl.convert(row))
            check_example(example, kind)
            given = example["image"]
            path = Path(given).expanduser()
            path = path if path.is_absolute() else base / path
            open_image(path, where, given)
            example["image"] = str(path.resolve())
        except (DataError, KeyError, TypeError, ValueError) as exc:
            detail = f"missing field {exc}" if type(exc) is KeyError else str(exc)
            message = detail if detail.startswith(where) else f"{where}: {detail} (adapter '{adapter}' expects {impl.expects()})"
            if not skip_bad_rows:
                raise DataError(message + "; fix the row or pass --skip-bad-rows") from None
            skipped.append(message)
            continue
        examples.append(example)
    return examples, skipped


def _load_one(text: str, kind: str, skip_bad_rows: bool, seed: int) -> tuple[list[dict[str, Any]], list[str]]:
    from .load import resolve, sample

    spec = parse_spec(text)
    folder = Path(spec.name).expanduser()
    if kind == "image_classification" and is_image_folder(folder):
        examples, skipped = read_image_folder(folder, skip_bad_rows)
    else:
        sources, entry_adapter, columns = resolve(spec, skip_bad_rows=skip_bad_rows)
        examples, skipped = [], []
        for raw in sources:
            got, bad = convert_image_rows(raw, kind, entry_adapter, columns, skip_bad_rows)
            examples += got
            skipped += bad
    if not examples:
        raise DataError(f"dataset '{text}' gave no {kind} examples" + (f"; first skipped: {skipped[0]}" if skipped else ""))
    if spec.n is not None:
        examples = sample(examples, spec.n, random.Random(f"{seed}:{spec}"))
    return examples, skipped


def load_image_datasets(specs: Sequence[str], kind: str, *, val_specs: Sequence[str] = (), val_ratio: float = 0.0,
                        seed: int = 42, skip_bad_rows: bool = False) -> ImageRows:
    """Train / validation image examples of ``kind`` (``image_caption`` or ``image_classification``)."""
    if not specs:
        raise DataError("no dataset given")
    rng = random.Random(seed)
    train, skipped = [], []
    for text in specs:
        got, bad = _load_one(text, kind, skip_bad_rows, seed)
        train += got
        skipped += bad
    val: list[dict[str, Any]] = []
    for text in val_specs:
        got, bad = _load_one(text, kind, skip_bad_rows, seed)
        val += got
        skipped += bad
    rng.shuffle(train)
    if not val_specs and val_ratio > 0 and len(train) > 1:
        n_val = max(1, round(len(train) * val_ratio))
        val, train = train[:n_val], train[n_val:]
    return ImageRows(train=train, val=val, skipped=skipped)
