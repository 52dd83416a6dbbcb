"""TALLRec's LoRA adapter (Bao et al., RecSys 2023) for any causal LM, through ``peft``.

TALLRec's own recipe (``finetune_rec.py`` + ``shell/instruct_7B.sh``): ``r=8, lora_alpha=16, lora_dropout=0.05``,
``bias="none"``, ``task_type=CAUSAL_LM`` on the attention **query and value** projections, which its LLaMA code
names ``q_proj``/``v_proj``. Those names are LLaMA's (and OPT's, Mistral's, Qwen's ...), not universal: GPT-2
fuses q/k/v into ``c_attn``, GPT-NeoX/BLOOM/Falcon into ``query_key_value``. So the targets are resolved per
architecture:

1. an explicit ``target_modules`` list, when the caller gives one;
2. ``peft``'s own per-``model_type`` defaults (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``, which maps
   ``llama`` and ``opt`` to ``["q_proj", "v_proj"]`` and fused-attention models to their fused projection);
3. otherwise the Linear layers whose names are the usual query/value spellings found in the model itself.

Anything else raises :class:`~allmrec.errors.AllmrecError` asking for ``--lora-target-modules``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

from ..errors import AllmrecError

#: query/value projection names by spelling family, tried in order when peft has no default for a model type
_QUERY_VALUE_NAMES = (("q_proj", "v_proj"), ("query", "value"), ("q", "v"), ("wq", "wv"), ("q_lin", "v_lin"))


@dataclass
class LoraSettings:
    """TALLRec's LoRA hyper-parameters (defaults = ``finetune_rec.py`` / ``alpaca-lora-7B/adapter_config.json``)."""

    r: int = field(default=8, metadata={"help": "LoRA rank (TALLRec: 8)"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha; the update is scaled by alpha / r (TALLRec: 16)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input (TALLRec: 0.05)"})
    target_modules: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "module names to adapt; default: the attention query/value projections of the architecture"},
    )

    def validate(self) -> None:
        if self.r <= 0 or self.alpha <= 0:
            raise AllmrecError(f"LoRA r and alpha must be positive, got r={self.r}, alpha={self.alpha}")
        if not 0 <= self.dropout < 1:
            raise AllmrecError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if self.target_modules is not None and not self.target_modules:
            raise AllmrecError("--lora-target-modules is empty; give module names or leave it out")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules) if self.target_modules else None
        return d


def _linear_leaf_names(model) -> set[str]:
    from torch import nn

    names = set()
    for name, module in model.named_modules():
        # transformers' GPT-2 Conv1D is a Linear with transposed weights; peft adapts it too
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
            names.add(name.rsplit(".", 1)[-1])
    return names


def resolve_lora_targets(model, target_modules: Sequence[str] | None = None) -> list[str]:
    """The attention query/value projection names of ``model`` (see the module docstring)."""
    present = _linear_leaf_names(model)
    if target_modules:
        missing = [t for t in target_modules if t not in present]
        if missing:
            raise AllmrecError(
                f"--lora-target-modules {missing} are not Linear layers of this {model.config.model_type} model; "
                f"its Linear layer names are {sorted(present)}"
            )
        return list(target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    model_type = getattr(model.config, "model_type", None)
    defaults = PEFT_DEFAULTS.get(model_type)
    if defaults and all(t in present for t in defaults):
        return list(defaults)
    for pair in _QUERY_VALUE_NAMES:
        if all(t in present for t in pair):
            return list(pair)
    raise AllmrecError(
        f"cannot tell the attention query/value projections of model type {model_type!r} (Linear layers: "
        f"{sorted(present)}); pass --lora-target-modules NAME [NAME ...]"
    )


def build_lora_config(model, settings: LoraSettings | None = None):
    """``peft.LoraConfig`` with TALLRec's values and the targets resolved for ``model``."""
    from peft import LoraConfig, TaskType

    settings = settings or LoraSettings()
    settings.validate()
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=resolve_lora_targets(model, settings.target_modules),
        bias="none",
        task_type=TaskType.CAUSAL_LM,
    )


def add_lora(model, settings: LoraSettings | None = None, base_model_name_or_path: str | None = None):
    """Wrap ``model`` in a ``PeftModelForCausalLM`` whose only trainable weights are the LoRA matrices.

    ``base_model_name_or_path`` is what ``adapter_config.json`` records (``AutoPeftModelForCausalLM`` loads the
    base LLM from it); default: the model's own ``name_or_path``.
    """
    from peft import get_peft_model

    peft_model = get_peft_model(model, build_lora_config(model, settings))
    if base_model_name_or_path:
        # set after wrapping: get_peft_model overwrites it with the model's own name_or_path
        peft_model.peft_config["default"].base_model_name_or_path = str(base_model_name_or_path)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    if not trainable or any("lora_" not in n for n in trainable):
        raise AllmrecError(f"LoRA wrapping left non-LoRA weights trainable: {[n for n in trainable if 'lora_' not in n][:3]}")
    return peft_model


__all__ = ["LoraSettings", "resolve_lora_targets", "build_lora_config", "add_lora"]
