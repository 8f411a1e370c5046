"""Fake third-party plugins, installed without pip as distributions in a temporary folder.

``build_site`` copies the plugin modules next to hand-written ``*.dist-info`` folders (``METADATA``
and ``entry_points.txt`` with a ``[swiftune]`` section); putting that folder on ``PYTHONPATH``
makes ``importlib.metadata`` see real entry points, exactly as after ``pip install``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class FakeDist:
    distribution: str
    entry_point: str
    module: str
    version: str = "0.1"


#: entry-point name -> what the plugin does (see each module's docstring).
DISTS = [
    FakeDist("swiftune-scale", "scale", "swt_scale"),  # a good third-party tuner
    FakeDist("swiftune-broken", "brokenname", "swt_broken_import"),  # fails to import
    FakeDist("swiftune-raiser", "raiser", "swt_raiser"),  # hook registers one tuner, then raises
    FakeDist("swiftune-dupe", "dupe", "swt_dupe"),  # registers the taken name 'lora'
    FakeDist("swiftune-upper", "upper", "swt_upper"),  # registers an upper-case name
    FakeDist("swiftune-off", "offplug", "swt_off"),  # good; disabled through the environment
    FakeDist("swiftune-clash", "lora", "swt_clash"),  # reuses the entry-point name 'lora'
]


def build_site(dest: Path, dists: list[FakeDist] = DISTS) -> Path:
    """Write the fake distributions and their modules into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for d in dists:
        shutil.copy(HERE / f"{d.module}.py", dest / f"{d.module}.py")
        info = dest / f"{d.distribution.replace('-', '_')}-{d.version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {d.distribution}\nVersion: {d.version}\n")
        (info / "entry_points.txt").write_text(f"[swiftune]\n{d.entry_point} = {d.module}\n")
    return dest
