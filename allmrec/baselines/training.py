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

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AllmrecError
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import StageTimer, get_logger
from ..utils.seeding import set_seed
TRAINING_LOG = "training_log.json"

logger = get_logger(__name__)


@dataclass
class TallRecTrainingArguments:
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
    num_negatives: int = field(default=19, metadata={"help": "negatives per training prompt (paper: 19, i.e. 20 candidates)"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimisation steps (demo budget)"})
    max_train_users: int | None = field(default=None, metadata={"help": "train on a seeded subset of this many users (demo budget)"})
    valid_users: int = field(default=200, metadata={"help": "validation users for early stopping (seeded subset; 0 = no validation)"})
    eval_every: int | None = field(default=None, metadata={"help": "validate every N steps (default: after each epoch)"})
    patience: int = field(default=2, metadata={"help": "stop after this many validations without a better Hit@1"})
    domain: str | None = field(default=None, metadata={"help": "prompt wording movie/game/item (default: the dataset's)"})
    prompt_style: str = field(default="fig6", metadata={"help": "fig6 (paper Fig. 6, used for TALLRec), paper or official"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute the LLM's activations in backward (saves memory)"})
    mixed_precision: str = field(default="auto", metadata={"help": "auto (bf16/fp16 on GPU, none on CPU), no, bf16, fp16"})
    llm_dtype: str = field(default="auto", metadata={"help": "LLM weight dtype: auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice (sampling, LoRA init, subsets)"})
    log_every: int = field(default=10, metadata={"help": "log the running loss every N steps"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out directory"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def validate(self) -> None:
        def bad(name, what):
            raise AllmrecError(f"--{name.replace('_', '-')}={getattr(self, name)!r} is invalid: {what}")

        for name in ("epochs", "batch_size", "num_negatives", "log_every", "patience", "lora_r", "lora_alpha"):
            if getattr(self, name) <= 0:
                bad(name, "must be a positive integer")
        for name in ("max_steps", "max_train_users", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                bad(name, "must be a positive integer when given")
        for name in ("valid_users", "warmup_steps"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1) or self.weight_decay < 0:
            bad("lr", "lr must be > 0, betas in [0, 1), weight decay >= 0")
        if not 0 <= self.lora_dropout < 1:
            bad("lora_dropout", "must be in [0, 1)")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            bad("mixed_precision", "choose auto, no, bf16 or fp16")
        if Path(self.out).exists() and not self.overwrite:
            raise AllmrecError(f"output directory {self.out} already exists; pass --overwrite to replace it")

    def lora_settings(self):
        from .lora import LoraSettings

        targets = tuple(self.lora_target_modules) if self.lora_target_modules else None
        return LoraSettings(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout, target_modules=targets)


def build_tallrec(args: TallRecTrainingArguments, dataset, device: str):
    """The base LLM with a fresh LoRA adapter (seeded) as a :class:`TextOnlyRecommender`."""
    import torch

    from .. import __version__
    from ..assets import resolve_llm
    from ..model.modeling_allmrec import load_llm
    from .lora import add_lora
    from .text_model import TextOnlyConfig, TextOnlyRecommender, llm_dtype

    llm, tokenizer = load_llm(args.llm, dtype=llm_dtype(args.llm_dtype, device))
    llm.requires_grad_(False)
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
    return model.to(torch.device(device))


def _save(model, out: Path, log: dict, lora: dict) -> None:
    from .text_model import save_tallrec

    with atomic_directory(out, overwrite=True) as tmp:
        save_tallrec(model, tmp, extra={"lora": lora})
        atomic_write_json(tmp / TRAINING_LOG, log)


def train_tallrec(args: TallRecTrainingArguments) -> dict:
    """Train the LoRA adapter; write the best one to ``args.out``; return the training log."""
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from ..data.dataset import PreparedDataset
    from ..model.training import Stage2Samples, _mixed_precision, collate, validation_hit1

    args.validate()
    timer = StageTimer()
    set_seed(args.seed)
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision=_mixed_precision(args.mixed_precision, cuda), cpu=not cuda)
    with timer("load"):
        dataset = PreparedDataset.load(args.data)
        samples = Stage2Samples(dataset, args.num_negatives, args.seed, args.max_train_users)
        model = build_tallrec(args, dataset, str(accelerator.device))
    named = model.trainable_parameters()
    n_trainable = sum(p.numel() for _, p in named)
    n_total = sum(p.numel() for p in model.parameters())
    lora = dict(args.lora_settings().to_dict(), target_modules=sorted(model.model.peft_config["default"].target_modules))
    logger.info(
        "TALLRec: %d training users (%d skipped: < 2 training items), %s trainable LoRA parameters of %s, LLM %s, "
        "LoRA on %s", len(samples), samples.skipped, f"{n_trainable:,}", f"{n_total:,}", args.llm, lora["target_modules"],
    )
    trainable = [p for _, p in named]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, betas=(args.beta1, args.beta2), weight_decay=args.weight_decay)
    warmup = args.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    core = accelerator.unwrap_model(model)

    steps_per_epoch = (len(samples) + args.batch_size - 1) // args.batch_size
    total_steps = steps_per_epoch * args.epochs if args.max_steps is None else min(args.max_steps, steps_per_epoch * args.epochs)
    log: dict[str, Any] = {
        "model_type": "tallrec",
        "args": asdict(args),
        "lora": lora,
        "training_users": len(samples),
        "skipped_users": samples.skipped,
        "trainable_parameters": n_trainable,
        "total_parameters": n_total,
        "steps_per_epoch": steps_per_epoch,
        "planned_steps": total_steps,
        "losses": [],
        "epochs": [],
        "validations": [],
        "best": None,
        "stopped_early": False,
    }
    best_hit, bad_rounds, step, samples_seen = -1.0, 0, 0, 0
    train_seconds = 0.0
    out = Path(args.out)

    def save_now() -> None:
        if accelerator.is_main_process:
            with timer("save"):
                _save(core, out, _finish_log(log, timer, train_seconds, samples_seen), lora)

    def validate_and_maybe_save(epoch: int) -> bool:
        """Returns True when early stopping triggers."""
        nonlocal best_hit, bad_rounds
        if args.valid_users == 0:
            return False
        with timer("validate"):
            hit, n = validation_hit1(core, dataset, args.valid_users, args.seed, args.progress)
        entry = {"step": step, "epoch": epoch + 1, "hit@1": hit, "n_users": n}
        log["validations"].append(entry)
        logger.info("validation after step %d: Hit@1 %.4f on %d users", step, hit, n)
        if n == 0 or hit > best_hit:  # an empty valid split cannot select: keep the latest state
            best_hit, bad_rounds = (hit if n else best_hit), 0
            log["best"] = entry
            save_now()
            return False
        bad_rounds += 1
        return bad_rounds >= args.patience

    stop = False
    epoch = 0
    bar = tqdm(total=total_steps, desc="TALLRec", unit="step", disable=not args.progress or not accelerator.is_main_process)
    for epoch in range(args.epochs):
        model.train()
        order = samples.epoch_order(epoch)
        epoch_losses = []
        for start in range(0, len(order), args.batch_size):
            if step >= total_steps:
                break
            global_batch = order[start:start + args.batch_size]
            if len(global_batch) < accelerator.num_processes:
                break  # every process must take part in a distributed step
            t0 = time.perf_counter()
            idx = global_batch[accelerator.process_index::accelerator.num_processes]
            batch = collate(core, [samples.sample(int(i), epoch) for i in idx])
            batch = {k: v.to(accelerator.device) for k, v in batch.items() if k not in ("cf_input_ids", "user_ids")}
            with accelerator.autocast():
                loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            samples_seen += len(idx) * accelerator.num_processes
            train_seconds += time.perf_counter() - t0
            value = float(loss.detach())
            epoch_losses.append(value)
            log["losses"].append({"step": step, "loss": value})
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", epoch=epoch + 1)
            if step % args.log_every == 0:
                logger.info("step %d/%d epoch %d loss %.4f", step, total_steps, epoch + 1, float(np.mean(epoch_losses[-args.log_every:])))
            if args.eval_every and step % args.eval_every == 0 and step < total_steps:
                if validate_and_maybe_save(epoch):
                    stop = True
                    break
        log["epochs"].append({"epoch": epoch + 1, "steps": len(epoch_losses),
                              "mean_loss": float(np.mean(epoch_losses)) if epoch_losses else None})
        if stop:
            log["stopped_early"] = True
            break
        if step >= total_steps:
            break
        if not args.eval_every and validate_and_maybe_save(epoch):
            log["stopped_early"] = True
            break
    bar.close()
    # Final validation for the last state when the loop ended between validations.
    last_validated = log["validations"][-1]["step"] if log["validations"] else -1
    if not log["stopped_early"] and last_validated != step:
        validate_and_maybe_save(epoch)
    if args.valid_users == 0:
        save_now()
    final = _finish_log(log, timer, train_seconds, samples_seen)
    if accelerator.is_main_process and out.is_dir():
        atomic_write_json(out / TRAINING_LOG, final)
    return final


def _finish_log(log: dict, timer: StageTimer, train_seconds: float, samples_seen: int) -> dict:
    done = dict(log)
    done["steps"] = len(log["losses"])
    done["samples_seen"] = samples_seen
    done["timings"] = dict(timer.seconds, train=round(train_seconds, 3))
    done["train_samples_per_second"] = round(samples_seen / train_seconds, 4) if train_seconds > 0 else None
    done["seconds_per_step"] = round(train_seconds / done["steps"], 4) if done["steps"] else None
    return done


def arguments_from_namespace(ns) -> TallRecTrainingArguments:
    names = {f.name for f in fields(TallRecTrainingArguments)}
    return TallRecTrainingArguments(**{k: v for k, v in vars(ns).items() if k in names})


__all__ = ["TallRecTrainingArguments", "build_tallrec", "train_tallrec", "arguments_from_namespace"]
