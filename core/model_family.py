"""``ModelFamily``: the entry type of the ``models`` registry.

A family tells swiftune what it cannot read from a checkpoint's config: which hub ids are known to
belong to it, which chat template its base checkpoints were trained with, where its embedding,
block list, head, attention and MLP sit, which layers a tuner targets by default and whether
loading needs ``trust_remote_code``. ``swiftune.loading.family_for`` picks the family of a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Tasks a family (or ``load_model``) can name, and the spellings accepted for them.
TASKS = (
    "causal-lm",
    "seq2seq-lm",
    "sequence-classification",
    "token-classification",
    "image-classification",
    "text-to-image",
    "masked-lm",
    "feature-extraction",
)
_TASK_ALIASES = {
    "text-generation": "causal-lm",
    "seq2seq": "seq2seq-lm",
    "conditional-generation": "seq2seq-lm",
    "text2text-generation": "seq2seq-lm",
    "text-classification": "sequence-classification",
    "seq-cls": "sequence-classification",
    "token-cls": "token-classification",
    "fill-mask": "masked-lm",
    "base": "feature-extraction",
    "t2i": "text-to-image",
}
ARCHITECTURE_KEYS = ("embedding", "layers", "lm_head", "attention", "mlp")


def normalize_task(task: str) -> str:
    """The canonical spelling of ``task`` (``causal_lm`` -> ``causal-lm``); unknown tasks raise."""
    key = task.strip().lower().replace("_", "-")
    key = _TASK_ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of: {', '.join(TASKS)}")
    return key


@dataclass(frozen=True)
class ArchitectureKeys:
    """Where the parts of a model sit, as module-name suffixes (``"model.layers"`` matches
    ``model.layers`` and ``base.model.layers``). ``attention`` and ``mlp`` name the submodule of
    one block (a path inside each element of ``layers``). ``"a|b"`` tries ``a``, then ``b`` (module
    names that changed across transformers versions). None: the architecture has no such part."""

    embedding: str | None = None
    layers: str | None = None
    lm_head: str | None = None
    attention: str | None = None
    mlp: str | None = None


@dataclass(frozen=True)
class PackagedModel:
    """Weights shipped inside an installed Python package (a pip-installable model file).

    ``load_model(name)`` finds ``file`` in ``package`` without importing it, converts it once and
    serves it from the swiftune cache. ``pip`` is what the error message tells users to install.
    """

    name: str
    package: str
    file: str
    pip: str
    description: str = ""
    #: The model loaded when none is named (``swiftune.plugin_defaults.default_model``).
    default_of_kind: bool = False


@dataclass(frozen=True)
class ModelFamily:
    """One model family (``swiftune list models``); registered through ``register_models``.

    ``parent`` marks a refinement of another family with the same architecture (qwen2.5 of qwen2,
    smollm2 of llama): it is chosen only when the checkpoint's id or folder name is one of its
    ``hf_ids`` / ``ms_ids``, otherwise the parent is. ``template`` names a registered chat
    template used when the tokenizer carries none (None: the tokenizer must bring its own).
    """

    name: str
    description: str
    hf_ids: tuple[str, ...] = ()
    ms_ids: tuple[str, ...] = ()
    #: ``config.architectures`` class names this family matches.
    architectures: tuple[str, ...] = ()
    #: ``config.model_type`` values this family matches (a weaker match than ``architectures``).
    model_types: tuple[str, ...] = ()
    template: str | None = None
    keys: ArchitectureKeys = field(default_factory=ArchitectureKeys)
    #: Suggested ``target_modules`` for LoRA-style tuners (``default_target_modules``): names /
    #: suffixes, or ``"all-linear"``. Tuners keep their own defaults; callers and recipes pass it.
    target_modules: tuple[str, ...] | str = "all-linear"
    #: The checkpoints need ``trust_remote_code=True`` (code shipped in the hub repository).
    trust_remote_code: bool = False
    task: str = "causal-lm"
    parent: str | None = None
    packaged: tuple[PackagedModel, ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # lists are accepted for convenience, stored as tuples
                object.__setattr__(self, f.name, tuple(value))
        object.__setattr__(self, "task", normalize_task(self.task))
        if not isinstance(self.keys, ArchitectureKeys):
            raise TypeError(f"model family '{self.name}': keys must be an ArchitectureKeys")
        if self.trust_remote_code and "remote code" not in self.description:
            # ``swiftune list models`` prints the description: say that loading runs hub code.
            object.__setattr__(self, "description", f"{self.description} [needs remote code]")

    # -- what users and tuners read ----------------------------------------------------------
    @property
    def default_target_modules(self) -> list[str] | str:
        """``target_modules`` in the form tuner configs take (a list, or ``"all-linear"``)."""
        return self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)

    def transformers_implements(self) -> bool:
        """Whether the installed transformers has a class for one of ``architectures``."""
        import transformers

        return any(hasattr(transformers, arch) for arch in self.architectures)

    def matches_id(self, name_or_path: str | None) -> bool:
        """``name_or_path`` is one of this family's hub ids, or a local copy named after one
        (``/models/Qwen2.5-7B-Instruct``, a hub cache folder ``models--Qwen--Qwen2.5-7B-Instruct``)."""
        if not name_or_path:
            return False
        name = str(name_or_path).strip().rstrip("/\\").lower()
        for prefix in ("ms::", "hf::"):
            name = name.removeprefix(prefix)
        parts = name.replace("\\", "/").split("/")
        if any(name == p.name.lower() for p in self.packaged):
            return True
        for hub_id in (*self.hf_ids, *self.ms_ids):
            hid = hub_id.lower()
            if name == hid or name.endswith("/" + hid) or parts[-1] == hid.rsplit("/", 1)[-1]:
                return True
            if any(p == "models--" + hid.replace("/", "--") for p in parts):
                return True
        return False

    def module_names(self, model: nn.Module, key: str) -> list[str]:
        """Names of the modules of ``model`` that architecture key ``key`` points at: one name for
        ``embedding`` / ``layers`` / ``lm_head``, one per block of ``layers`` for ``attention`` / ``mlp``."""
        if key not in ARCHITECTURE_KEYS:
            raise ValueError(f"unknown architecture key {key!r}; expected one of: {', '.join(ARCHITECTURE_KEYS)}")
        pattern = getattr(self.keys, key)
        for alternative in (pattern or "").split("|"):
            names = self._find(model, key, alternative) if alternative else []
            if names:
                return names
        return []

    def _find(self, model: nn.Module, key: str, pattern: str) -> list[str]:
        if key in ("attention", "mlp"):
            found = self.module_names(model, "layers")
            if not found:
                return []
            names = []
            for index, block in model.get_submodule(found[0]).named_children():
                try:
                    block.get_submodule(pattern)
                except AttributeError:
                    continue
                names.append(f"{found[0]}.{index}.{pattern}")
            return names
        names = [n for n, _ in model.named_modules() if n == pattern or n.endswith("." + pattern)]
        # The outermost match: a wrapper may repeat a suffix deeper down.
        return sorted(names, key=lambda n: n.count("."))[:1]

    def summary(self) -> str:
        """One line for listings."""
        flags = " [trust_remote_code]" if self.trust_remote_code else ""
        return f"{self.task}{flags}: {self.description}"
