"""Stage-2 training: fit F_U and F_I so the frozen LLM names the next item (paper §4.2.3, Eq. 8).

Samples (as the official code, ``pre_train_phase2``): one per user per epoch (users with ≥ 2 training
items), target = the **last training item**, history = the training items before it (prompt: the last 10;
CF input: the last ``cf_max_seq_len``), candidates = the target + 19 negatives drawn **per epoch** from the
items the user never interacted with (train, valid or test), shuffled. Every draw comes from
``numpy.random.default_rng((seed, epoch, user_id))``, so a run is reproducible and independent of batch
order. Loss = the LLM's token cross-entropy on the target title + EOS only.

Loop: ``accelerate`` (CPU / one GPU / several GPUs alike), Adam(lr 1e-4, betas (0.9, 0.98)), batch 4,
5 epochs (paper); optional step / user budgets for demos; bf16 (fp16 without bf16 support) autocast on a
GPU; optional gradient checkpointing of the frozen LLM. Validation = rank-mode Hit@1 on a seeded subset of
validation users, after each epoch (or every ``eval_every`` steps); the best state is written atomically to
``--out`` (never the LLM weights) and training stops after ``patience`` validations without improvement.
``training_log.json`` records losses, validations and per-stage timings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AllmrecError, CheckpointError, DataError
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import StageTimer, get_logger
from ..utils.seeding import set_seed

logger = get_logger(__name__)

TRAINING_LOG = "training_log.json"


@dataclass
class Stage2TrainingArguments:
    """Options of ``allmrec train stage2``; defaults are the paper's (§5.1) where it gives one."""

    data: str = field(metadata={"help": "prepared dataset directory (allmrec data prepare)"})
    stage1: str = field(metadata={"help": "stage-1 output directory (allmrec train stage1): item_embeddings.safetensors + config.json"})
    out: str = field(metadata={"help": "output directory of the stage-2 checkpoint (no LLM weights inside)"})
    llm: str = field(default="facebook/opt-6.7b", metadata={"help": "frozen LLM: Hub id, local folder or asset name (smollm2-135m-instruct)"})
    cf_model: str | None = field(default=None, metadata={"help": "CF checkpoint; default: the cf_model_path recorded by stage 1"})
    epochs: int = field(default=5, metadata={"help": "passes over the training users (paper: 5)"})
    batch_size: int = field(default=4, metadata={"help": "users per optimisation step (paper: 4; official code: 2)"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate (paper: 1e-4)"})
    beta1: float = field(default=0.9, metadata={"help": "Adam beta1 (official code: 0.9)"})
    beta2: float = field(default=0.98, metadata={"help": "Adam beta2 (official code: 0.98)"})
    num_negatives: int = field(default=19, metadata={"help": "negatives per training prompt (paper: 19, i.e. 20 candidates)"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimisation steps (demo budget)"})
    max_train_users: int | None = field(default=None, metadata={"help": "train on a seeded subset of this many users (demo budget)"})
    valid_users: int = field(default=200, metadata={"help": "validation users for early stopping (seeded subset; 0 = no validation)"})
    eval_every: int | None = field(default=None, metadata={"help": "validate every N steps (default: after each epoch)"})
    patience: int = field(default=2, metadata={"help": "stop after this many validations without a better Hit@1"})
    domain: str | None = field(default=None, metadata={"help": "prompt wording movie/game/item (default: the dataset's)"})
    prompt_style: str = field(default="paper", metadata={"help": "paper (Fig. 3), official (authors' code string) or fig6"})
    item_embedding: str = field(default="cf", metadata={"help": "F_I input: cf (e_i, paper), text (q_i) or auto (q_i for items unseen in training)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute the frozen LLM's activations in backward (saves memory)"})
    mixed_precision: str = field(default="auto", metadata={"help": "auto (bf16/fp16 on GPU, none on CPU), no, bf16, fp16"})
    llm_dtype: str = field(default="auto", metadata={"help": "LLM weight dtype: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice (sampling, init, subsets)"})
    log_every: int = field(default=10, metadata={"help": "log the running loss every N steps"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out directory"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def validate(self) -> None:
        def bad(name, what):
            raise AllmrecError(f"--{name.replace('_', '-')}={getattr(self, name)!r} is invalid: {what}")

        for name in ("epochs", "batch_size", "num_negatives", "log_every", "patience"):
            if getattr(self, name) <= 0:
                bad(name, "must be a positive integer")
        for name in ("max_steps", "max_train_users", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                bad(name, "must be a positive integer when given")
        if self.valid_users < 0:
            bad("valid_users", "must be >= 0")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            bad("lr", "lr must be > 0 and betas in [0, 1)")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            bad("mixed_precision", "choose auto, no, bf16 or fp16")
        if Path(self.out).exists() and not self.overwrite:
            raise AllmrecError(f"output directory {self.out} already exists; pass --overwrite to replace it")


# ---------------------------------------------------------------------------------------------- samples
class Stage2Samples:
    """Seeded per-epoch training samples (see the module docstring)."""

    def __init__(self, dataset, num_negatives: int = 19, seed: int = 0, max_users: int | None = None) -> None:
        users = dataset.split("users")
        self.num_items = dataset.num_items
        self.num_negatives = num_negatives
        self.seed = seed
        train = [np.asarray(s, dtype=np.int64) for s in users["train"]]
        valid = np.asarray(users["valid"], dtype=np.int64)
        test = np.asarray(users["test"], dtype=np.int64)
        user_ids = np.asarray(users["user_id"], dtype=np.int64)
        eligible = [i for i, s in enumerate(train) if len(s) >= 2]
        self.skipped = len(train) - len(eligible)
        if max_users and max_users < len(eligible):
            pick = np.random.default_rng(seed).choice(len(eligible), size=int(max_users), replace=False)
            eligible = [eligible[i] for i in np.sort(pick)]
        if not eligible:
            raise DataError(f"{dataset.path}: no user has 2+ training items; stage 2 has nothing to train on")
        self.user_ids = user_ids[eligible]
        self.sequences = [train[i] for i in eligible]
        self.seen = [set(train[i].tolist()) | {int(valid[i]), int(test[i])} - {0} for i in eligible]
        if self.num_items - 1 < num_negatives:
            raise DataError(f"{dataset.path} has {self.num_items} items: too few for {num_negatives} negatives")

    def __len__(self) -> int:
        return len(self.user_ids)

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch, 7)).permutation(len(self))

    def sample(self, index: int, epoch: int) -> dict[str, Any]:
        """``{"user_id", "history", "candidates", "target"}`` for one user in one epoch."""
        seq = self.sequences[index]
        uid = int(self.user_ids[index])
        rng = np.random.default_rng((self.seed, epoch, uid))
        seen = self.seen[index]
        if len(seen) + self.num_negatives > self.num_items:
            raise DataError(f"user {uid} has interacted with too many items to draw {self.num_negatives} negatives")
        negatives: list[int] = []
        chosen: set[int] = set()
        while len(negatives) < self.num_negatives:
            for item in rng.integers(1, self.num_items + 1, size=2 * self.num_negatives).tolist():
                if item not in seen and item not in chosen:
                    chosen.add(item)
                    negatives.append(item)
                    if len(negatives) == self.num_negatives:
                        break
        target = int(seq[-1])
        candidates = np.array(negatives + [target], dtype=np.int64)[rng.permutation(self.num_negatives + 1)]
        return {"user_id": uid, "history": seq[:-1], "candidates": candidates, "target": target}


# ---------------------------------------------------------------------------------------------- helpers
def read_stage1(path: str | Path) -> tuple[dict, dict]:
    """``(stage-1 config dict, {"joint", "text"} tensors)`` from a stage-1 output directory."""
    from ..alignment import load_stage1_item_embeddings

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{path} is not a stage-1 output (no config.json); run `allmrec train stage1`")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file} is corrupt ({e}); re-run `allmrec train stage1`") from e
    return cfg, load_stage1_item_embeddings(path)


def _mixed_precision(requested: str, cuda: bool) -> str:
    if requested != "auto":
        return requested if cuda else "no"
    if not cuda:
        return "no"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def build_model(args: Stage2TrainingArguments, dataset, device: str):
    """Load LLM, CF model and stage-1 tables; return a fresh :class:`ALLMRecForRecommendation`."""
    from .. import __version__
    from ..cf import load_cf_model
    from .inference import resolve_llm_dtype
    from .modeling_allmrec import ALLMRecForRecommendation, load_llm

    s1_cfg, tables = read_stage1(args.stage1)
    cf_path = args.cf_model or s1_cfg.get("cf_model_path")
    if not cf_path:
        raise CheckpointError(f"{args.stage1}/config.json records no cf_model_path; pass --cf-model")
    cf = load_cf_model(cf_path)
    if int(cf.config.num_items) != dataset.num_items or tables["joint"].shape[0] != dataset.num_items + 1:
        raise DataError(
            f"item counts differ: dataset {dataset.num_items}, CF model {cf.config.num_items}, stage-1 tables "
            f"{tables['joint'].shape[0] - 1}; use the stage-1 / CF outputs trained on {args.data}"
        )
    llm, tokenizer = load_llm(args.llm, dtype=resolve_llm_dtype(args.llm_dtype, device))
    model = ALLMRecForRecommendation.from_components(
        llm, tokenizer, cf,
        item_joint=tables["joint"], item_text=tables["text"], item_train_count=dataset.item_popularity,
        item_titles=dataset.titles, llm_name_or_path=args.llm,
        domain=args.domain or dataset.domain, prompt_style=args.prompt_style, item_embedding=args.item_embedding,
        cf_model_path=str(cf_path), stage1_path=str(args.stage1), dataset_name=dataset.name, allmrec_version=__version__,
    )
    if args.gradient_checkpointing:
        model.enable_llm_gradient_checkpointing()
    return model


def collate(model, samples: list[dict]) -> dict:
    """Training batch: right-padded prompt + target, labels on target + EOS, CF histories."""
    import torch

    from .modeling_allmrec import left_pad_histories
    from .processing_allmrec import encode_prompts

    builder = model.prompt_builder()
    titles = model.item_titles
    prompts = [builder.build(s["history"], s["candidates"], titles, target_id=s["target"]) for s in samples]
    batch = encode_prompts(model.tokenizer, prompts, with_targets=True, padding_side="right")
    batch["cf_input_ids"] = left_pad_histories([s["history"] for s in samples], model.config.cf_max_seq_len)
    batch["user_ids"] = torch.tensor([s["user_id"] for s in samples], dtype=torch.long)
    return batch


def validation_hit1(model, dataset, users: int, seed: int, progress: bool) -> tuple[float, int]:
    """Rank-mode Hit@1 on a seeded subset of the valid split → ``(hit@1, n_users)``."""
    from ..evaluation.metrics import ranks_from_scores
    from .inference import rank_scores, subset_rows

    rows = subset_rows(dataset.eval_rows("valid"), users, seed)
    if not len(rows["user_id"]):
        return float("nan"), 0
    was_training = model.training
    model.eval()
    try:
        scores = rank_scores(model, rows, dataset.titles, progress=progress)
    finally:
        model.train(was_training)
    ranks = ranks_from_scores(scores, rows["target_index"])
    return float((ranks < 1).mean()), len(ranks)


def _save(model, out: Path, log: dict) -> None:
    with atomic_directory(out, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / TRAINING_LOG, log)


# ---------------------------------------------------------------------------------------------- train
def train_stage2(args: Stage2TrainingArguments) -> dict:
    """Train F_U / F_I; write the best checkpoint to ``args.out``; return the training log."""
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from ..data.dataset import PreparedDataset

    args.validate()
    timer = StageTimer()
    set_seed(args.seed)
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision=_mixed_precision(args.mixed_precision, cuda), cpu=not cuda)
    with timer("load"):
        dataset = PreparedDataset.load(args.data)
        samples = Stage2Samples(dataset, args.num_negatives, args.seed, args.max_train_users)
        model = build_model(args, dataset, str(accelerator.device))
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    logger.info(
        "stage 2: %d training users (%d skipped: < 2 training items), %s trainable parameters, LLM %s (hidden %d)",
        len(samples), samples.skipped, f"{n_trainable:,}", args.llm, model.config.llm_hidden_size,
    )
    optimizer = torch.optim.Adam(trainable, lr=args.lr, betas=(args.beta1, args.beta2))
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)

    steps_per_epoch = (len(samples) + args.batch_size - 1) // args.batch_size
    total_steps = steps_per_epoch * args.epochs if args.max_steps is None else min(args.max_steps, steps_per_epoch * args.epochs)
    log: dict[str, Any] = {
        "args": asdict(args),
        "training_users": len(samples),
        "skipped_users": samples.skipped,
        "trainable_parameters": n_trainable,
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
            if accelerator.is_main_process:
                with timer("save"):
                    _save(core, out, _finish_log(log, timer, train_seconds, samples_seen))
            return False
        bad_rounds += 1
        return bad_rounds >= args.patience

    stop = False
    bar = tqdm(total=total_steps, desc="stage 2", unit="step", disable=not args.progress or not accelerator.is_main_process)
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
            # each process takes its share of the global batch
            idx = global_batch[accelerator.process_index::accelerator.num_processes]
            batch = collate(core, [samples.sample(int(i), epoch) for i in idx])
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.autocast():
                loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
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
    timer.seconds["train"] = round(train_seconds, 3)
    # Final validation for the last state when the loop ended between validations.
    last_validated = log["validations"][-1]["step"] if log["validations"] else -1
    if not log["stopped_early"] and last_validated != step:
        validate_and_maybe_save(epoch)
    if args.valid_users == 0 and accelerator.is_main_process:
        with timer("save"):
            _save(core, out, _finish_log(log, timer, train_seconds, samples_seen))
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
    return done


def arguments_from_namespace(ns) -> Stage2TrainingArguments:
    names = {f.name for f in fields(Stage2TrainingArguments)}
    return Stage2TrainingArguments(**{k: v for k, v in vars(ns).items() if k in names})


__all__ = ["Stage2TrainingArguments", "Stage2Samples", "train_stage2", "read_stage1", "collate", "validation_hit1", "build_model", "arguments_from_namespace"]
