"""The process-wide registries and the plugin host that fills them on first access."""

from __future__ import annotations

from typing import Any

from .plugins import PluginHost
from .registry import OWNED_NAME, Registry


def _is_tuner(obj: Any) -> bool:
    from .tuner import Tuner

    return isinstance(obj, type) and issubclass(obj, Tuner)


def _is_dataset_adapter(obj: Any) -> bool:
    from .dataset import DatasetAdapter

    return isinstance(obj, type) and issubclass(obj, DatasetAdapter)


def _is_template(obj: Any) -> bool:
    from .template import ChatTemplate

    return isinstance(obj, ChatTemplate)


def _is_model_family(obj: Any) -> bool:
    from .model_family import ModelFamily

    return isinstance(obj, ModelFamily)


def _is_dataset_entry(obj: Any) -> bool:
    from .dataset import DatasetEntry

    return isinstance(obj, DatasetEntry)


def _is_reward(obj: Any) -> bool:
    from .rewards import RewardFunction

    return isinstance(obj, RewardFunction)


tuners: Registry = Registry("tuner", accepts=_is_tuner)
models: Registry = Registry("model", accepts=_is_model_family)
templates: Registry = Registry("template", accepts=_is_template)
dataset_adapters: Registry = Registry("dataset adapter", accepts=_is_dataset_adapter)
datasets: Registry = Registry("dataset", accepts=_is_dataset_entry, pattern=OWNED_NAME)
rewards: Registry = Registry("reward", accepts=_is_reward)

host = PluginHost(
    {
        "register_tuners": [tuners],
        "register_models": [models],
        "register_datasets": [dataset_adapters, datasets],
        "register_templates": [templates],
        "register_rewards": [rewards],
    }
)

ALL: dict[str, Registry] = {
    "tuners": tuners,
    "models": models,
    "templates": templates,
    "datasets": datasets,
    "dataset-adapters": dataset_adapters,
    "rewards": rewards,
}
