"""The optimisation loop of the prompt-based LLM models: A-LLMRec stage 2, MLP-LLM and TALLRec.

What the three share (and what this loop owns): one sample per training user per epoch
(:class:`allmrec.model.training.Stage2Samples`), a **global batch** of ``batch_size`` users per
optimisation step whatever the number of processes, the LLM's token cross-entropy on the target
title + EOS, early stopping on validation Hit@1 (rank mode), atomic best checkpoints, resumable states.

Distributed and accumulated steps compute *the same update* as one process with the whole batch:

* the global batch is split across processes (``users[rank::world]``), then each share into
  ``gradient_accumulation_steps`` micro-batches (no gradient sync until the last one: ``no_sync``);
* each micro-batch's mean loss (per target token; per user for the listwise objectives) is rescaled to
  ``sum of its token losses × world / tokens in the global batch`` (the count is all-reduced first), so after DDP averages the gradients they equal
  the gradient of the global batch's mean token loss — the one-process objective — exactly, not merely
  "averaged per process" (processes hold different numbers of target tokens);
* a process whose share is empty (a last batch smaller than the world) still runs one zero-weighted
  micro-batch, so every process joins every gradient all-reduce and no user is dropped.

Order of events per step (a saved state is taken after all of them, so a resumed run replays nothing):
train → validation every ``eval_every`` steps → end-of-epoch bookkeeping and validation → state save →
(testing hook) kill.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import AllmrecError
from ..utils.io import atomic_write_json
from ..utils.logging import StageTimer, get_logger
from .checkpointing import TrainingStateManager, maybe_kill_for_testing

logger = get_logger(__name__)

IGNORE_INDEX = -100
TRAINING_LOG = "training_log.json"


@dataclass
class PromptLoopHooks:
    """What differs between the models trained by :func:`run_prompt_training`."""

    #: name in progress bars and logs ("stage 2", "TALLRec")
    name: str
    #: ``(core model, samples) → batch dict`` of CPU tensors with ``labels``
    collate: Callable[[Any, list[dict]], dict]
    #: ``(core model, out dir, log, state_dict or None) → None``: write the best checkpoint atomically (main
    #: process only); ``state_dict`` is the gathered full state under FSDP / DeepSpeed ZeRO-3, else None
    save_checkpoint: Callable[[Any, Path, dict, Any], None]
    #: ``(core model) → (hit@1, users)`` on the validation subset
    validate: Callable[[Any], tuple[float, int]]


def _finish_log(log: dict, loop: dict, timer: StageTimer) -> dict:
    done = dict(log)
    done["steps"] = loop["step"]
    done["samples_seen"] = loop["samples_seen"]
    train = loop["train_seconds"]
    done["timings"] = dict(timer.seconds, train=round(train, 3))
    done["train_samples_per_second"] = round(loop["samples_seen"] / train, 4) if train > 0 else None
    done["seconds_per_step"] = round(train / loop["step"], 4) if loop["step"] else None
    done["tokens_seen"] = loop.get("tokens_seen", 0)  # prompt + target tokens through the LLM, padding excluded
    done["train_tokens_per_second"] = round(done["tokens_seen"] / train, 2) if train > 0 else None
    return done


def run_prompt_training(args, accelerator, model, optimizer, samples, log: dict, timer: StageTimer,
                        hooks: PromptLoopHooks, scheduler=None) -> dict:
    """Train until the budget or early stopping; returns the final training log.

    ``args`` carries ``epochs, batch_size, max_steps, valid_users, eval_every, patience, log_every, progress,
    out`` and the :class:`~allmrec.training.checkpointing.ScalingArguments`.
    """
    import torch
    from tqdm.auto import tqdm

    from accelerate.utils import DistributedType

    core = accelerator.unwrap_model(model)
    world, rank = accelerator.num_processes, accelerator.process_index
    accum = args.gradient_accumulation_steps
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if sharded and args.save_state_every:
        # accelerate's FSDP / DeepSpeed checkpointing bypasses the state hooks and writes every (sharded) weight,
        # the frozen LLM included; resumable states are implemented for one process and DDP.
        raise AllmrecError("--save-state-every / --resume-from are supported on one process and DDP (accelerate launch "
                           "--multi_gpu), not under FSDP / DeepSpeed")
    if accelerator.distributed_type == DistributedType.DEEPSPEED and accum > 1:
        raise AllmrecError("under DeepSpeed set gradient accumulation in the DeepSpeed config "
                           "(gradient_accumulation_steps) and keep --gradient-accumulation-steps 1")
    steps_per_epoch = (len(samples) + args.batch_size - 1) // args.batch_size
    total_steps = steps_per_epoch * args.epochs if args.max_steps is None else min(args.max_steps, steps_per_epoch * args.epochs)
    out = Path(args.out)
    log.update({
        "steps_per_epoch": steps_per_epoch, "planned_steps": total_steps, "num_processes": world,
        "gradient_accumulation_steps": accum, "global_batch_size": args.batch_size,
        "losses": [], "epochs": [], "validations": [], "best": None, "stopped_early": False, "resumed_from": None,
    })
    loop: dict[str, Any] = {"step": 0, "epoch": 0, "start": 0, "best_hit": -1.0, "bad_rounds": 0,
                            "samples_seen": 0, "train_seconds": 0.0, "epoch_losses": []}
    states = TrainingStateManager(accelerator, out, asdict(args), args.save_state_every, args.save_state_limit)
    if args.resume_from:
        saved = states.load(args.resume_from)
        loop, log = saved["loop"], saved["log"]
        log["resumed_from"] = {"state": str(args.resume_from), "step": loop["step"]}

    def save_best() -> None:
        # Sharded engines hold a slice of each parameter per process: gathering is collective (every process).
        state = accelerator.get_state_dict(model) if sharded else None
        if accelerator.is_main_process:
            with timer("save"):
                hooks.save_checkpoint(core, out, _finish_log(log, loop, timer), state)
        accelerator.wait_for_everyone()

    def validate(epoch: int) -> bool:
        """Validate, keep the best state; True when early stopping triggers."""
        if args.valid_users == 0:
            return False
        with timer("validate"):
            hit, n = hooks.validate(core)
        entry = {"step": loop["step"], "epoch": epoch + 1, "hit@1": hit, "n_users": n}
        log["validations"].append(entry)
        logger.info("%s validation after step %d: Hit@1 %.4f on %d users", hooks.name, loop["step"], hit, n)
        if n == 0 or hit > loop["best_hit"]:  # an empty valid split cannot select: keep the latest state
            loop["best_hit"], loop["bad_rounds"] = (hit if n else loop["best_hit"]), 0
            log["best"] = entry
            save_best()
            return False
        loop["bad_rounds"] += 1
        return loop["bad_rounds"] >= args.patience

    def train_step(global_batch: np.ndarray, epoch: int) -> float:
        share = global_batch[rank::world]
        micro = [m for m in np.array_split(share, accum) if len(m)]
        weight = 1.0
        if not micro:  # this process has no user in a short last batch: join the all-reduce with zero weight
            micro, weight = [global_batch[:1]], 0.0
        batches = []
        for m in micro:
            b = hooks.collate(core, [samples.sample(int(i), epoch) for i in m])
            batches.append({k: v.to(accelerator.device) for k, v in b.items()})
        # the loss unit: target tokens for the token loss (paper), users for the listwise objectives
        tokens = [float(len(b["target_index"]) if "target_index" in b else (b["labels"] != IGNORE_INDEX).sum()) * weight
                  for b in batches]
        inputs = sum(float(b["attention_mask"].sum()) for b in batches) * weight  # LLM tokens processed (throughput)
        counts = accelerator.reduce(torch.tensor([sum(tokens), inputs], device=accelerator.device), reduction="sum")
        n_global = float(counts[0])
        loop["tokens_seen"] = loop.get("tokens_seen", 0) + int(counts[1])
        loss_sum = 0.0
        for j, (b, n_b) in enumerate(zip(batches, tokens)):
            sync = j == len(batches) - 1
            with (contextlib.nullcontext() if sync else accelerator.no_sync(model)):
                with accelerator.autocast():
                    mean_loss = model(**b).loss
                # mean over this micro-batch's tokens → its share of the global token mean (× world: DDP averages)
                accelerator.backward(mean_loss * (n_b * world / n_global) if n_b else mean_loss * 0.0)
            loss_sum += float(mean_loss.detach()) * n_b
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        total = float(accelerator.reduce(torch.tensor(loss_sum, device=accelerator.device), reduction="sum"))
        value = total / n_global
        if not math.isfinite(value):
            raise AllmrecError(f"{hooks.name}: the loss diverged at step {loop['step'] + 1} ({value}); try a lower --lr")
        return value

    bar = tqdm(total=total_steps, initial=loop["step"], desc=hooks.name, unit="step",
               disable=not args.progress or not accelerator.is_main_process)
    stop = False
    while loop["epoch"] < args.epochs and loop["step"] < total_steps and not stop:
        epoch = loop["epoch"]
        model.train()
        order = samples.epoch_order(epoch)
        for start in range(loop["start"], len(order), args.batch_size):
            global_batch = order[start:start + args.batch_size]
            t0 = time.perf_counter()
            value = train_step(global_batch, epoch)
            loop["train_seconds"] += time.perf_counter() - t0
            loop["step"] += 1
            loop["samples_seen"] += len(global_batch)
            step = loop["step"]
            loop["epoch_losses"].append(value)
            log["losses"].append({"step": step, "loss": value})
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", epoch=epoch + 1)
            if step % args.log_every == 0:
                logger.info("%s step %d/%d epoch %d loss %.4f", hooks.name, step, total_steps, epoch + 1,
                            float(np.mean(loop["epoch_losses"][-args.log_every:])))
            if args.eval_every and step % args.eval_every == 0 and step < total_steps:
                stop = validate(epoch)
            epoch_done = start + args.batch_size >= len(order)
            budget_done = step >= total_steps
            if epoch_done or budget_done or stop:
                log["epochs"].append({"epoch": epoch + 1, "steps": len(loop["epoch_losses"]),
                                      "mean_loss": float(np.mean(loop["epoch_losses"])) if loop["epoch_losses"] else None})
                loop["epoch_losses"] = []
                if not (stop or budget_done or args.eval_every):
                    stop = validate(epoch)
                log["stopped_early"] = stop
            loop["epoch"], loop["start"] = (epoch + 1, 0) if epoch_done else (epoch, start + args.batch_size)
            if states.due(step) and not (stop or budget_done):
                states.save(step, {"loop": loop, "log": _finish_log(log, loop, timer)})
            maybe_kill_for_testing(step)
            if stop or budget_done:
                break
    bar.close()
    # Final validation for the last state when the loop ended between validations.
    last_validated = log["validations"][-1]["step"] if log["validations"] else -1
    if not log["stopped_early"] and last_validated != loop["step"]:
        validate(max(loop["epoch"] - 1, 0) if loop["start"] == 0 else loop["epoch"])
    if args.valid_users == 0:
        save_best()
    final = _finish_log(log, loop, timer)
    if accelerator.is_main_process and out.is_dir():
        atomic_write_json(out / TRAINING_LOG, final)
    accelerator.wait_for_everyone()
    return final


def training_summary(name: str, log: dict, out, extra: str = "") -> str:
    """The one line a prompt-model trainer's CLI prints when it ends: steps, throughput, what was kept and where.

    Without validation (``--valid-users 0``) there is no best step to report: the last step is the checkpoint.
    """
    best = log.get("best") or {}
    if "hit@1" in best:
        kept = f"best validation Hit@1 {best['hit@1']:.4f} at step {best.get('step', '-')}"
    else:
        kept = f"no validation (--valid-users 0): the checkpoint is step {log['steps']}"
    return (f"{name} done: {log['steps']} steps, {log['samples_seen']} samples ({log['train_samples_per_second']} "
            f"samples/s){extra}; {kept}; checkpoint: {out}")


__all__ = ["PromptLoopHooks", "run_prompt_training", "training_summary", "TRAINING_LOG"]
