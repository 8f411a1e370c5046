"""Run in a subprocess with the fake site on PYTHONPATH; prints one JSON object of observations.

Kept out of the pytest process so discovery starts from a clean interpreter (laziness is
observable in ``sys.modules``) and the global registries of the test session stay untouched.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

PLUGIN_MODULES = ["swt_scale", "swt_broken_import", "swt_raiser", "swt_dupe", "swt_upper", "swt_off", "swt_clash"]


def loaded(prefixes: list[str]) -> dict[str, bool]:
    return {p: any(m == p or m.startswith(p + ".") for m in sys.modules) for p in prefixes}


def error_of(fn) -> dict[str, str]:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - recorded for the test to judge
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": "", "message": ""}


def scale_numbers() -> dict[str, object]:
    """Use the third-party 'scale' tuner end to end on a tiny MLP; return the measured numbers."""
    import torch
    from torch import nn

    from swiftune import Swift
    from swiftune.serialization import read_adapter_config

    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    fresh = copy.deepcopy(base)
    x = torch.randn(5, 4)
    ref = base(x).detach()
    model = Swift.prepare(base, {"tuner": "scale"})
    identity = (model(x) - ref).abs().max().item()
    with torch.no_grad():
        model.model[2].scale["default"].fill_(2.0)
    scaled = model(x).detach()
    with model.disable_adapters():
        disabled = (model(x) - ref).abs().max().item()
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        files = sorted(p.name for p in Path(tmp).iterdir())
        saved_tuner = read_adapter_config(tmp)["tuner"]
        reloaded = Swift.from_pretrained(fresh, tmp)
        reload_err = (reloaded(x) - 2 * ref).abs().max().item()
    merged = model.merge_and_unload()
    return {
        "identity_err": identity,
        "scaled_err": (scaled - 2 * ref).abs().max().item(),
        "disabled_err": disabled,
        "trainable": trainable,
        "files": files,
        "saved_tuner": saved_tuner,
        "reload_err": reload_err,
        "merged_err": (merged(x) - 2 * ref).abs().max().item(),
        "merged_type": type(merged[2]).__name__,
    }


def main() -> None:
    import swiftune

    out: dict[str, object] = {"after_import": loaded(["torch", "swiftune.tuners.lora", *PLUGIN_MODULES])}
    from swiftune import registries

    out["tuners"] = registries.tuners.names()
    out["after_access"] = loaded(["torch", "swiftune.tuners.lora", *PLUGIN_MODULES])
    out["plugins"] = {p.name: asdict(p) for p in registries.host.report()}
    out["get_brokenname"] = error_of(lambda: registries.tuners.get("brokenname"))
    out["get_halfway"] = error_of(lambda: registries.tuners.get("halfway"))
    out["get_offtuner"] = error_of(lambda: registries.tuners.get("offtuner"))
    out["lora_is_builtin"] = registries.tuners.entry("lora").obj.__module__.startswith("swiftune.tuners.lora")
    out["scale_plugin"] = registries.tuners.entry("scale").plugin
    out["scale"] = scale_numbers()
    out["swiftune_version"] = swiftune.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
