"""No kernel is downloaded from the Hub (and no warning about one is printed) unless the user opts in.

bitsandbytes asks the ``kernels`` package for a Hub kernel while it is being imported (on CPUs with
AVX512-BF16), and importing the training stack imports bitsandbytes. Each check runs swiftune in a
fresh interpreter with the hub *not* marked offline, so an attempted download would show up as a
DNS lookup (an audit event) even on a machine without network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Runs a swiftune command, then imports the training stack; reports the network lookups it saw.
PROBE = r"""
import json, sys
lookups = []
sys.addaudithook(lambda event, args: event in ("socket.getaddrinfo", "socket.connect") and lookups.append(str(args[0])[:60]))
from swiftune.cli import main
code = max(main(argv.split()) for argv in sys.argv[2:])
if sys.argv[1] == "train":
    import swiftune.recipes.trainer  # transformers' Trainer -> peft -> bitsandbytes
import os
print(json.dumps({"code": code, "lookups": lookups, "LOCAL_KERNELS": os.environ.get("LOCAL_KERNELS"),
                  "USE_HUB_KERNELS": os.environ.get("USE_HUB_KERNELS")}))
"""
WARNING_TEXTS = ("kernels-community", "publisher trust", "gemm_4bit_forward")


def probe(*commands: str, train: bool = True, **env: str) -> tuple[dict, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LOCAL_KERNELS", "USE_HUB_KERNELS",
                          "SWIFTUNE_HUB_KERNELS")}
    # No proxy: a lookup fails at once on a machine without network instead of waiting.
    clean = {k: v for k, v in clean.items() if "proxy" not in k.lower()}
    proc = subprocess.run([sys.executable, "-c", PROBE, "train" if train else "-", *commands], capture_output=True, text=True, timeout=120,
                          env={**clean, "OMP_NUM_THREADS": "1", **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_no_kernel_download_and_no_warning() -> None:
    report, stderr = probe("list tuners", "plugins", "list models")
    assert report["code"] == 0
    assert report["lookups"] == [], f"network lookups at start-up: {report['lookups']}"
    assert not [t for t in WARNING_TEXTS if t in stderr], stderr[-2000:]


@pytest.mark.slow
def test_offline_mode_prints_no_trust_check_warning() -> None:
    _, stderr = probe("list tuners", HF_HUB_OFFLINE="1")
    assert not [t for t in WARNING_TEXTS if t in stderr], stderr[-2000:]


def test_user_settings_and_the_opt_in_are_left_alone() -> None:
    report, _ = probe("list tuners", train=False, LOCAL_KERNELS="org/repo=/some/path", USE_HUB_KERNELS="YES")
    assert report["LOCAL_KERNELS"] == "org/repo=/some/path" and report["USE_HUB_KERNELS"] == "YES"
    report, _ = probe("list tuners", train=False, SWIFTUNE_HUB_KERNELS="1")
    assert report["LOCAL_KERNELS"] is None and report["USE_HUB_KERNELS"] is None
