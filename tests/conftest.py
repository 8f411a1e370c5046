"""Shared test setup: never touch a hub, deterministic seeds."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

# Under pytest-xdist (make test: one worker per core) each worker gets one thread.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """The fake third-party plugins (tests/plugin_fixtures), pip-installed into a folder once per worker."""
    from plugin_fixtures import build_site

    return build_site(tmp_path_factory.getbasetemp() / "plugin-site")
