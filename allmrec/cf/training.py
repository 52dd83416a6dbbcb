"""Train a CF backbone with ``accelerate``: one loop for CPU, one GPU or N GPUs.

    allmrec train cf --data D --model sasrec --out M                 # plain python: CPU or 1 GPU
    accelerate launch -m allmrec train cf --data D --model sasrec --out M   # N processes

What the loop does, and why:

* samples: :mod:`allmrec.cf.samples` (the reference seq/pos/neg layout, negatives redrawn each
  epoch from a ``(seed, epoch)`` generator; NCF: (user, item) pairs);
* optimiser: Adam, lr 1e-3, betas (0.9, 0.98), no weight decay (reference ``main.py``);
* every ``eval_every`` epochs the model scores the **stored** ``valid`` candidates (the same
  1 + 19 sets the test protocol uses) and reports Hit@1/5/10, NDCG@10, MRR. The reference code
  trains a fixed 200 epochs and keeps the last one; here the checkpoint with the best
  ``select_metric`` (default NDCG@10, less noisy than Hit@1 on 20 candidates) is kept, and
  training stops after ``patience`` evaluations without improvement;
* every new best is written atomically to ``out`` (``save_pretrained`` inside
  :func:`allmrec.utils.io.atomic_directory`) together with ``training_log.json`` (per-epoch
  loss, validation metrics, seconds), so a crash leaves the best model so far, never a
  half-written one. ``training_log.json`` says ``"status": "running"`` until the run ends.

Every process computes the validation metrics on the unwrapped model; the main process's
improve/stop decision is broadcast so all ranks stay in step, and only the main process writes.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AllmrecError
from ..training.checkpointing import ScalingArguments
from ..utils.logging import get_logger

logger = get_logger(__name__)

#: Per-model defaults where the papers differ; every other hyper-parameter is shared.
#: SASRec/GRU4Rec/NextItNet: SASRec's recipe (batch 128, one negative per position).
#: NCF: the NCF paper's 4 negatives per positive, batch 256.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "sasrec": {"batch_size": 128, "num_negatives": 1},
    "gru4rec": {"batch_size": 128, "num_negatives": 1},
    "nextitnet": {"batch_size": 128, "num_negatives": 1},
    "ncf": {"batch_size": 256, "num_negatives": 4},
}
SELECT_METRICS = ("hit@1", "hit@5", "hit@10", "ndcg@10", "mrr")


@dataclass
class CFTrainingArguments(ScalingArguments):
    """Options of ``allmrec train cf``. Defaults follow the SASRec reference code."""

    data: str = field(metadata={"help": "prepared dataset directory (from `allmrec data prepare`)"})
    out: str = field(metadata={"help": "output checkpoint directory (written atomically)"})
    model: str = field(default="sasrec", metadata={"help": "backbone: sasrec, gru4rec, nextitnet or ncf"})
    loss: str = field(
        default="bce",
        metadata={"help": "bce: one sampled negative per position (the SASRec paper); ce: full-softmax "
                          "cross-entropy over all items (much stronger; what a fair baseline needs)"},
    )
    epochs: int = field(
        default=200,
        metadata={"help": "maximum epochs (one epoch = every trainable user once). 200 is the paper's fixed budget; "
                          "with early stopping it is only an upper bound"},
    )
    patience: int = field(
        default=20, metadata={"help": "stop after this many validations without improvement of --select-metric (0: never stop early)"}
    )
    eval_every: int = field(default=1, metadata={"help": "validate every N epochs (and always after the last one)"})
    select_metric: str = field(default="ndcg@10", metadata={"help": "validation metric for early stopping / best checkpoint"})
    batch_size: int | None = field(default=None, metadata={"help": "training batch size (default: 128; NCF 256)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    adam_beta1: float = field(default=0.9, metadata={"help": "Adam beta1"})
    adam_beta2: float = field(default=0.98, metadata={"help": "Adam beta2 (SASRec reference: 0.98)"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 penalty through Adam (reference l2_emb = 0)"})
    hidden_size: int = field(default=50, metadata={"help": "embedding / representation size d (paper: 50)"})
    maxlen: int = field(default=50, metadata={"help": "sequence length (paper: 50)"})
    dropout: float | None = field(default=None, metadata={"help": "dropout rate (default: the model's own, SASRec 0.5)"})
    num_negatives: int | None = field(default=None, metadata={"help": "negatives per positive for BCE (default 1; NCF 4)"})
    seed: int = field(default=42, metadata={"help": "seed for init, shuffling and negatives"})
    few_shot: int | None = field(
        default=None, metadata={"help": "train (and validate) only on the prepared few-shot subset of K users"}
    )
    eval_batch_size: int = field(default=512, metadata={"help": "users per validation batch"})
    mixed_precision: str = field(default="auto", metadata={"help": "auto (the launcher's choice, else bf16/fp16 on GPU, none on CPU), no, bf16, fp16"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out directory"})
    progress: bool = field(default=True, metadata={"help": "show tqdm progress bars"})

    def __post_init__(self) -> None:
        from .loading import CF_MODEL_TYPES
        from .losses import LOSS_TYPES

        if self.model not in CF_MODEL_TYPES:
            raise AllmrecError(f"--model must be one of {', '.join(CF_MODEL_TYPES)}, got {self.model!r}")
        if self.loss not in LOSS_TYPES:
            raise AllmrecError(f"--loss must be one of {', '.join(LOSS_TYPES)}, got {self.loss!r}")
        if self.select_metric not in SELECT_METRICS:
            raise AllmrecError(f"--select-metric must be one of {', '.join(SELECT_METRICS)}")
        defaults = MODEL_DEFAULTS[self.model]
        if self.batch_size is None:
            self.batch_size = defaults["batch_size"]
        if self.num_negatives is None:
            self.num_negatives = defaults["num_negatives"]
        for name in ("epochs", "batch_size", "hidden_size", "maxlen", "eval_every", "num_negatives", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise AllmrecError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.patience < 0:
            raise AllmrecError(f"--patience must be >= 0, got {self.patience}")
        if not self.lr > 0:
            raise AllmrecError(f"--lr must be positive, got {self.lr}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise AllmrecError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.few_shot is not None and self.few_shot <= 0:
            raise AllmrecError(f"--few-shot must be positive, got {self.few_shot}")
        self.validate_scaling()


def build_config(args: CFTrainingArguments, num_items: int, num_users: int):
    """The model config for ``args`` on a dataset with the given catalogue/user counts."""
    from .loading import CF_MODELS

    config_cls, _ = CF_MODELS[args.model]
    kwargs: dict[str, Any] = {"num_items": num_items, "hidden_size": args.hidden_size, "maxlen": args.maxlen,
                              "loss_type": args.loss}
    if args.model == "ncf":
        kwargs["num_users"] = num_users
    if args.dropout is not None:
        if args.model == "nextitnet":
            raise AllmrecError("--dropout: NextItNet has no dropout layer")
        kwargs["dropout_rate"] = args.dropout
    return config_cls(**kwargs)


class CFTrainer:
    """Owns the accelerator, model, optimiser, samples and validation rows of one run.

    ``train()`` runs the whole loop; ``train_epoch``/``validate`` are public so benchmarks can
    time them alone.
    """

    def __init__(self, args: CFTrainingArguments, accelerator=None):
        import torch
        from accelerate.utils import set_seed
        from torch.utils.data import DataLoader

        from ..data.dataset import PreparedDataset
        from ..evaluation.subsets import take_rows
        from ..training.accelerator import build_accelerator
        from .loading import CF_MODELS
        from .samples import PointwiseTrainingSamples, SequenceTrainingSamples

        self.args = args
        if Path(args.out).exists() and not args.overwrite and not args.resume_from:  # fail before minutes of setup
            raise AllmrecError(f"output directory {args.out} already exists; pass --overwrite to replace it")
        self.accelerator = accelerator or build_accelerator(args.mixed_precision)
        set_seed(args.seed)
        self.dataset = PreparedDataset.load(args.data)
        ds = self.dataset
        train_sequences = ds.train_sequences
        user_ids = np.arange(1, len(train_sequences) + 1, dtype=np.int64)
        valid_rows = ds.eval_rows("valid")
        if args.few_shot is not None:
            chosen = np.asarray(sorted(ds.few_shot_users(args.few_shot)), dtype=np.int64)
            train_sequences = [train_sequences[u - 1] for u in chosen]
            user_ids = chosen
            valid_rows = take_rows(valid_rows, np.flatnonzero(np.isin(valid_rows["user_id"], chosen)))
        if len(valid_rows["user_id"]) == 0:
            raise AllmrecError(f"{args.data} has no validation rows for these users; cannot select a checkpoint")
        self.valid_rows = valid_rows

        self.config = build_config(args, ds.num_items, ds.num_users)
        _, model_cls = CF_MODELS[args.model]
        model = model_cls(self.config)
        if model_cls.training_input == "sequence":
            self.samples = SequenceTrainingSamples(train_sequences, user_ids, ds.num_items, args.maxlen,
                                                   num_negatives=args.num_negatives, seed=args.seed)
        else:
            self.samples = PointwiseTrainingSamples(train_sequences, user_ids, ds.num_items,
                                                    num_negatives=args.num_negatives, seed=args.seed)
        if len(self.samples) == 0:
            raise AllmrecError(f"{args.data}: no user has >= 2 training items; nothing to train on")
        # Reseeded at every epoch start (train_epoch): the shuffle of epoch e depends on (seed, e) only, so a run
        # resumed mid-epoch sees the same order as the uninterrupted one.
        self.shuffle_generator = torch.Generator().manual_seed(args.seed)
        loader = DataLoader(self.samples, batch_size=args.batch_size, shuffle=True, collate_fn=self.samples.collate_fn,
                            generator=self.shuffle_generator)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.adam_beta1, args.adam_beta2),
                                     weight_decay=args.weight_decay)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        self.num_parameters = sum(p.numel() for p in model.parameters())

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def train_epoch(self, epoch: int, max_steps: int | None = None, start_batch: int = 0,
                    totals: tuple[float, float] = (0.0, 0.0), on_step=None) -> tuple[float, float]:
        """One pass over the samples → (mean loss over all processes, seconds).

        ``max_steps`` stops after that many batches (benchmarks time a slice of a large epoch);
        ``start_batch`` and ``totals`` (this process's running ``(sum of loss·rows, rows)``) continue an
        epoch interrupted after that many batches (``skip_first_batches``); ``on_step(batch_index, totals)``
        runs after every optimisation step (training-state saves).
        """
        import torch
        from tqdm.auto import tqdm

        from ..training.accumulation import accumulate_backward

        acc = self.accelerator
        start = time.perf_counter()
        self.samples.set_epoch(epoch)
        # accelerate's loaders call dataset.set_epoch(<their own iteration count>) when iterated; pin it to ours
        # so a resumed run (a fresh skipping loader) draws the same per-epoch negatives.
        self.loader.set_epoch(epoch)
        self.shuffle_generator.manual_seed(self.args.seed * 1_000_003 + epoch)
        self.model.train()
        total = list(totals)
        if start_batch:
            # Creating a DataLoader iterator draws a base seed from the global torch RNG. The interrupted run was
            # past that draw when its state was saved, so the resumed run must not consume it again: dropout
            # masks would shift. Restore the RNG around the creation of the skipping iterator.
            # (accelerate's loaders are generators: the draw happens at the first next(), hence the prefetch.)
            import itertools

            rng = torch.get_rng_state()
            skip_loader = acc.skip_first_batches(self.loader, start_batch)
            skip_loader.set_epoch(epoch)
            skipping = iter(skip_loader)
            first = next(skipping, None)
            torch.set_rng_state(rng)
            loader = itertools.chain([first], skipping) if first is not None else iter(())
        else:
            loader = self.loader
        bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False, initial=start_batch,
                   total=len(self.loader), disable=not (self.args.progress and acc.is_local_main_process))
        for step, batch in enumerate(bar, start=start_batch):
            if max_steps is not None and step >= max_steps:
                break
            rows = next(iter(batch.values())).shape[0]
            outs = accumulate_backward(
                acc, self.model, rows, self.args.gradient_accumulation_steps,
                lambda sl: self.model(**{k: v[sl] for k, v in batch.items()}),
            )
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            total[0] += sum(float(out.loss.detach()) * n for out, n in outs)
            total[1] += rows
            if on_step is not None:
                on_step(step + 1, tuple(total))
        reduced = acc.reduce(torch.tensor(total, dtype=torch.float64, device=acc.device), reduction="sum")
        mean_loss = float(reduced[0] / reduced[1].clamp(min=1))
        if not math.isfinite(mean_loss):
            raise AllmrecError(f"training diverged at epoch {epoch} (loss {mean_loss}); try a lower --lr")
        return mean_loss, time.perf_counter() - start

    def validate(self) -> dict[str, float]:
        """Rank metrics on the stored ``valid`` candidates (pessimistic ties)."""
        from ..evaluation.cf_evaluator import candidate_ranks
        from ..evaluation.metrics import rank_metrics

        ranks = candidate_ranks(self.unwrapped, self.valid_rows, batch_size=self.args.eval_batch_size)
        return rank_metrics(ranks)

    def _log(self, epochs: list[dict], status: str, best: dict | None, total_seconds: float) -> dict:
        import torch
        import transformers

        args = self.args
        train_seconds = [e["seconds"] for e in epochs]
        return {
            "status": status,
            "model_type": args.model,
            "loss": args.loss,
            "args": asdict(args),
            "dataset": self.dataset.name,
            "dataset_path": str(self.dataset.path),
            "valid_candidate_fingerprint": self.dataset.candidate_fingerprint("valid"),
            "valid_users": int(len(self.valid_rows["user_id"])),
            "train_samples": len(self.samples),
            "num_parameters": self.num_parameters,
            "device": str(self.accelerator.device),
            "num_processes": self.accelerator.num_processes,
            "best_epoch": best["epoch"] if best else None,
            "best_valid": best["valid"] if best else None,
            "select_metric": args.select_metric,
            "epochs_run": len(epochs),
            "seconds_per_epoch": round(float(np.mean(train_seconds)), 4) if train_seconds else None,
            "total_seconds": round(total_seconds, 3),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "epochs": epochs,
        }

    def _save(self, log: dict) -> None:
        from ..utils.io import atomic_directory, atomic_write_json

        if not self.accelerator.is_main_process:
            return
        from .base import quiet_hf_progress

        with atomic_directory(self.args.out, overwrite=True) as tmp, quiet_hf_progress():
            self.unwrapped.save_pretrained(tmp, is_main_process=True)
            atomic_write_json(tmp / "training_log.json", log)

    def train(self) -> Path:
        """The full loop; returns the checkpoint directory (holding the best validation model)."""
        from ..training.checkpointing import TrainingStateManager, maybe_kill_for_testing
        from ..utils.io import atomic_write_json

        args, acc = self.args, self.accelerator
        out = Path(args.out)
        if out.exists() and not args.overwrite and not args.resume_from:
            raise AllmrecError(f"output directory {out} already exists; pass --overwrite to replace it")
        start = time.perf_counter()
        # Loop position and bookkeeping: everything a resumed run needs besides weights/optimiser/RNGs.
        loop: dict[str, Any] = {"epoch": 1, "batch": 0, "totals": [0.0, 0.0], "step": 0, "epochs": [], "best": None,
                                "bad_evals": 0, "elapsed": 0.0}
        states = TrainingStateManager(acc, out, asdict(args), args.save_state_every, args.save_state_limit)
        if args.resume_from:
            loop = states.load(args.resume_from)["loop"]
            start -= loop["elapsed"]
        epochs, best = loop["epochs"], loop["best"]
        stopped_early = False
        logger.info("training %s (%s loss) on %s: %d samples, %d parameters, device %s x%d", args.model, args.loss,
                    self.dataset.name, len(self.samples), self.num_parameters, acc.device, acc.num_processes)

        def after_step(epoch: int, batch: int, totals: tuple[float, float]) -> None:
            loop["step"] += 1
            if states.due(loop["step"]):
                loop.update(epoch=epoch, batch=batch, totals=list(totals), elapsed=time.perf_counter() - start)
                states.save(loop["step"], {"loop": loop})
            maybe_kill_for_testing(loop["step"])

        for epoch in range(loop["epoch"], args.epochs + 1):
            resume_batch, resume_totals = (loop["batch"], tuple(loop["totals"])) if epoch == loop["epoch"] else (0, (0.0, 0.0))
            loss, seconds = self.train_epoch(epoch, start_batch=resume_batch, totals=resume_totals,
                                             on_step=lambda b, t, e=epoch: after_step(e, b, t))
            record: dict[str, Any] = {"epoch": epoch, "loss": round(loss, 6), "seconds": round(seconds, 4), "valid": None}
            epochs.append(record)
            if epoch % args.eval_every and epoch != args.epochs:
                continue
            eval_start = time.perf_counter()
            valid = self.validate()
            record["valid"] = {k: round(v, 6) for k, v in valid.items()}
            record["valid_seconds"] = round(time.perf_counter() - eval_start, 4)
            # Compare unrounded values: the log keeps 6 digits, which would make every tie look like a gain.
            improved = best is None or valid[args.select_metric] > best["score"]
            if acc.num_processes > 1:
                # Ranks on different devices can differ at exact ties; follow the main process so
                # every rank takes the same branch (a divergent break would deadlock the others).
                from accelerate.utils import broadcast_object_list

                improved = broadcast_object_list([improved], from_process=0)[0]
            if acc.is_main_process:
                logger.info("epoch %d: loss %.4f, valid hit@1 %.4f ndcg@10 %.4f%s", epoch, loss, valid["hit@1"],
                            valid["ndcg@10"], " (best)" if improved else "")
            if improved:
                best = loop["best"] = {"epoch": epoch, "valid": record["valid"], "score": valid[args.select_metric]}
                loop["bad_evals"] = 0
                self._save(self._log(epochs, "running", best, time.perf_counter() - start))
            else:
                loop["bad_evals"] += 1
                if args.patience and loop["bad_evals"] >= args.patience:
                    stopped_early = True
                    break
            acc.wait_for_everyone()
        log = self._log(epochs, "finished", best, time.perf_counter() - start)
        log["stopped_early"] = stopped_early
        log["steps"] = loop["step"]
        log["gradient_accumulation_steps"] = args.gradient_accumulation_steps
        log["mixed_precision"] = acc.mixed_precision
        if args.resume_from:
            log["resumed_from"] = str(args.resume_from)
        if acc.is_main_process:
            # The weights on disk already are the best ones; only the log changes (atomic file write).
            atomic_write_json(out / "training_log.json", log)
            logger.info("best epoch %s (%s %.4f); checkpoint in %s", best["epoch"], args.select_metric,
                        best["valid"][args.select_metric], out)
        acc.wait_for_everyone()
        return out


def train_cf(args: CFTrainingArguments, accelerator=None) -> Path:
    """Train per ``args`` and return the checkpoint directory."""
    return CFTrainer(args, accelerator=accelerator).train()


__all__ = ["CFTrainingArguments", "CFTrainer", "MODEL_DEFAULTS", "build_config", "train_cf"]
