"""TALLRec training on A-LLMRec's task (paper Appendix A): LoRA on the LLM, the Figure-6 prompt, next-item title.

Same footing as stage 2 (``allmrec.model.training``), by reusing its pieces rather than copying them:

* samples: :class:`~allmrec.model.training.Stage2Samples` — one per user per epoch, target = the last
  training item, history = the items before it, 19 negatives redrawn per epoch from never-seen items, all
  from ``default_rng((seed, epoch, user_id))``;
* batches: :func:`~allmrec.model.training.collate` — the prompt (here without soft tokens) + ``' "Title"'`` +
  EOS, right-padded, labels only on the target tokens and EOS (A-LLMRec's masking; TALLRec's own code also
  trains on the input — ``train_on_inputs`` — which the re-run in the A-LLMRec paper does not say it kept);
* loss: the LLM's token cross-entropy on those labels (``ALLMRecForRecommendation.forward``);
* model selection: rank-mode Hit@1 on a seeded subset of validation users
  (:func:`~allmrec.model.training.validation_hit1`), after each epoch or every ``eval_every`` steps;
  the best adapter is written atomically; training stops after ``patience`` validations without improvement;
* budget: batch 4 users, at most 5 epochs (paper §5.1: "TALLRec is trained for a maximum of 5 epochs"),
  optional ``max_steps`` / ``max_train_users`` for demos.

What differs is only what is trained: the LoRA matrices (TALLRec's ``r=8, alpha=16, dropout=0.05`` on the
attention query/value projections, see :mod:`allmrec.baselines.lora`) instead of the projectors, and the
optimiser follows TALLRec (``adamw_torch`` with weight decay 0, i.e. Adam with betas (0.9, 0.999), lr 1e-4 —
also the smallest value of the A-LLMRec paper's grid {1e-2, 1e-3, 5e-4, 1e-4}); ``warmup_steps`` (TALLRec: 20)
is available and off by default, as in stage 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..training.prompt_arguments import PromptTrainingArguments
from ..training.prompt_loop import TRAINING_LOG, PromptLoopHooks, run_prompt_training
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import StageTimer, get_logger
from ..utils.seeding import set_seed

logger = get_logger(__name__)


@dataclass
class TallRecTrainingArguments(PromptTrainingArguments):
    """Options of ``allmrec train tallrec``; the budget defaults are the A-LLMRec paper's, the LoRA ones TALLRec's."""

    data: str = field(metadata={"help": "prepared dataset directory (allmrec data prepare)"})
    out: str = field(metadata={"help": "output directory: a PEFT adapter (+ tokenizer, allmrec sidecar, training log)"})
    llm: str = field(default="facebook/opt-6.7b", metadata={"help": "base LLM: Hub id, local folder or asset name (smollm2-135m-instruct)"})
    epochs: int = field(default=5, metadata={"help": "passes over the training users (paper: at most 5 for TALLRec)"})
    batch_size: int = field(default=4, metadata={"help": "users per optimisation step (paper: 4, as stage 2)"})
    lr: float = field(default=1e-4, metadata={"help": "learning rate (TALLRec: 1e-4)"})
    beta1: float = field(default=0.9, metadata={"help": "Adam beta1 (TALLRec's adamw_torch: 0.9)"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2 (TALLRec's adamw_torch: 0.999)"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay (TALLRec / HF Trainer: 0)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear learning-rate warm-up steps (TALLRec: 20; stage 2: 0)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (TALLRec: 8)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (TALLRec: 16)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (TALLRec: 0.05)"})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "modules to adapt (default: the attention query/value projections of the architecture)"})
    prompt_style: str = field(default="fig6", metadata={"help": "fig6 (paper Fig. 6, used for TALLRec), paper or official"})

    def validate(self) -> None:
        for name in ("lora_r", "lora_alpha"):
            if getattr(self, name) <= 0:
                self.invalid(name, "must be a positive integer")
        if self.warmup_steps < 0:
            self.invalid("warmup_steps", "must be >= 0")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1) or self.weight_decay < 0:
            self.invalid("lr", "lr must be > 0, betas in [0, 1), weight decay >= 0")
        if not 0 <= self.lora_dropout < 1:
            self.invalid("lora_dropout", "must be in [0, 1)")
        self.validate_prompt_training()

    def lora_settings(self):
        from .lora import LoraSettings

        targets = tuple(self.lora_target_modules) if self.lora_target_modules else None
        return LoraSettings(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout, target_modules=targets)


def build_tallrec(args: TallRecTrainingArguments, dataset, device: str):
    """The base LLM with a fresh LoRA adapter (seeded) as a :class:`TextOnlyRecommender`."""
    from .. import __version__
    from ..assets import resolve_llm
    from ..model.llm_loading import llm_is_placed, llm_load_kwargs, place_model
    from ..model.modeling_allmrec import load_llm
    from .lora import add_lora
    from .text_model import TextOnlyConfig, TextOnlyRecommender

    load_kwargs = llm_load_kwargs(args.llm_dtype, device, args.llm_quantization, args.llm_device_map)
    llm, tokenizer = load_llm(args.llm, **load_kwargs)
    llm.requires_grad_(False)
    if args.llm_quantization != "none":  # QLoRA recipe: fp32 norms / head, input grads for checkpointing
        from peft import prepare_model_for_kbit_training

        llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=args.gradient_checkpointing)
    set_seed(args.seed)  # LoRA's A matrices are random: same seed, same adapter
    peft_model = add_lora(llm, args.lora_settings(), base_model_name_or_path=resolve_llm(args.llm))
    config = TextOnlyConfig(
        model_type="tallrec", llm_name_or_path=args.llm, num_items=dataset.num_items,
        domain=args.domain or dataset.domain, prompt_style=args.prompt_style, dataset_name=dataset.name,
        allmrec_version=__version__,
    )
    model = TextOnlyRecommender(peft_model, tokenizer, config, item_titles=dataset.titles)
    if args.gradient_checkpointing:
        model.enable_llm_gradient_checkpointing()
    return place_model(model, device, model.llm if llm_is_placed(load_kwargs) else None)


def _save(model, out: Path, log: dict, lora: dict, state_dict=None) -> None:
    from .text_model import save_tallrec

    with atomic_directory(out, overwrite=True) as tmp:
        save_tallrec(model, tmp, extra={"lora": lora}, state_dict=state_dict)
        atomic_write_json(tmp / TRAINING_LOG, log)


def train_tallrec(args: TallRecTrainingArguments) -> dict:
    """Train the LoRA adapter; write the best one to ``args.out``; return the training log.

    The loop is stage 2's (:func:`allmrec.training.prompt_loop.run_prompt_training`): only the model, its
    inputs (no soft tokens, so no CF inputs) and the optimiser differ.
    """
    import torch

    from ..data.dataset import PreparedDataset
    from ..model.training import Stage2Samples, collate, prepare_placed, validation_hit1
    from ..training.accelerator import build_accelerator

    args.validate()
    timer = StageTimer()
    set_seed(args.seed)
    accelerator = build_accelerator(args.mixed_precision, cpu_bf16=True)  # an LLM step: bf16 is faster on such CPUs
    with timer("load"):
        dataset = PreparedDataset.load(args.data)
        samples = Stage2Samples(dataset, args.num_negatives, args.seed, args.max_train_users,
                               only_users=dataset.few_shot_users(args.few_shot) if args.few_shot else None)
        model = build_tallrec(args, dataset, str(accelerator.device))
    named = model.trainable_parameters()
    n_trainable = sum(p.numel() for _, p in named)
    n_total = sum(p.numel() for p in model.parameters())
    lora = dict(args.lora_settings().to_dict(), target_modules=sorted(model.model.peft_config["default"].target_modules))
    logger.info(
        "TALLRec: %d training users (%d skipped: < 2 training items), %s trainable LoRA parameters of %s, LLM %s, "
        "LoRA on %s, %d process(es)", len(samples), samples.skipped, f"{n_trainable:,}", f"{n_total:,}", args.llm,
        lora["target_modules"], accelerator.num_processes,
    )
    trainable = [p for _, p in named]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, betas=(args.beta1, args.beta2), weight_decay=args.weight_decay)
    warmup = args.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    model, optimizer = prepare_placed(accelerator, args, model, optimizer)
    # not prepared: accelerate would step it once per process per step, and --batch-size is the global batch
    accelerator.register_for_checkpointing(scheduler)
    log: dict[str, Any] = {
        "model_type": "tallrec",
        "args": asdict(args),
        "lora": lora,
        "training_users": len(samples),
        "skipped_users": samples.skipped,
        "trainable_parameters": n_trainable,
        "total_parameters": n_total,
        "mixed_precision": accelerator.mixed_precision,
    }

    def text_only_batch(core, batch_samples):  # the CF inputs of stage 2's collate have no use here
        return {k: v for k, v in collate(core, batch_samples).items() if k not in ("cf_input_ids", "user_ids")}

    hooks = PromptLoopHooks(
        name="TALLRec",
        collate=text_only_batch,
        save_checkpoint=lambda core, out, final, state: _save(core, out, final, lora, state),
        validate=lambda core: validation_hit1(core, dataset, args.valid_users, args.seed, args.progress),
    )
    return run_prompt_training(args, accelerator, model, optimizer, samples, log, timer, hooks, scheduler=scheduler)


def arguments_from_namespace(ns) -> TallRecTrainingArguments:
    names = {f.name for f in fields(TallRecTrainingArguments)}
    return TallRecTrainingArguments(**{k: v for k, v in vars(ns).items() if k in names})


__all__ = ["TallRecTrainingArguments", "build_tallrec", "train_tallrec", "arguments_from_namespace"]
