"""The stage-1 training loop (``allmrec train stage1``), on ``accelerate``.

Defaults are the paper's / official code's: batch 32 users, Adam(lr 1e-4, betas (0.9, 0.98)), 10 epochs,
SBERT fine-tuned, last item only, α = 0.5 and β from paper Table 3 for the dataset's domain.

Early stopping. After every epoch the model is scored on held-out interactions: for each user of the
``valid`` split, x^u from the training history, the held-out valid item as the positive and a fixed
prepared candidate as the negative. The stopping signal (default ``mrr``) is the mean reciprocal rank of
each valid item's own e_i when its q_i retrieves among the e of all distinct valid items. Why not a loss:
the MSE terms can be lowered by shrinking every latent towards a constant (the "over-smoothing" of paper
§4.1.1 in a milder form: the decoders compensate), and on small data the held-out L_rec, which dominates
the total, rises after a few epochs while the alignment is still improving (ml-100k: best total valid
loss at epoch 16 of 100, retrieval still climbing at 100). Retrieval is scale-invariant, collapse gives
chance level, and it measures what the text path (cold items, A-LLMRec (SBERT)) relies on. ``loss`` (the
held-out stage-1 objective) is available, and is used when no loss trains the text path. The best
epoch's weights are kept. Patience is 5 epochs (0: never stop early, still keep the best): the
paper-default run on ml-100k sat at chance-level MRR for 6 epochs before the alignment started to rise.

Checkpoints are atomic: the best model so far lives in ``.<out>.work/best`` (replaced atomically), and the
final directory ``out`` appears in one rename once the item embeddings and the report are written.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AllmrecError
from ..training.accelerator import build_accelerator
from ..training.checkpointing import ScalingArguments
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import StageTimer, get_logger
from .configuration_stage1 import PAPER_ALPHA, Stage1Config, paper_beta

logger = get_logger(__name__)

LOSS_TERMS = ("match", "item_recon", "text_recon", "rec")
TRAINING_LOG_FILE = "training_log.json"


@dataclass
class Stage1TrainingArguments(ScalingArguments):
    data: str = field(metadata={"help": "prepared dataset directory (`allmrec data prepare`)"})
    cf: str = field(metadata={"help": "frozen CF checkpoint directory (`allmrec train cf`)"})
    out: str = field(metadata={"help": "output directory for the stage-1 checkpoint (written atomically)"})
    epochs: int = field(default=10, metadata={"help": "training epochs (paper: 10)"})
    batch_size: int = field(default=32, metadata={"help": "users per step (paper: 32)"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate (paper Table 3: 1e-4)"})
    adam_beta1: float = field(default=0.9, metadata={"help": "Adam beta1 (official code: 0.9)"})
    adam_beta2: float = field(default=0.98, metadata={"help": "Adam beta2 (official code: 0.98)"})
    sbert: str = field(
        default="sentence-transformers/nq-distilbert-base-v1",
        metadata={"help": "sentence-transformers model: id, local path or `all-minilm-l6-v2` (paper: nq-distilbert-base-v1)"},
    )
    sbert_train_layers: int | None = field(
        default=None, metadata={"help": "None: fine-tune all of SBERT (paper); 0: freeze it; N: only the top N layers"}
    )
    sbert_max_seq_length: int | None = field(default=None, metadata={"help": "token limit of item texts (None: SBERT's own)"})
    alpha: float = field(default=PAPER_ALPHA, metadata={"help": "weight of L_item-recon (paper Table 3: 0.5)"})
    beta: float | None = field(
        default=None, metadata={"help": "weight of L_text-recon; None: paper Table 3 for the dataset domain (movie/game 0.5, item 0.2)"}
    )
    use_match_loss: bool = field(default=True, metadata={"help": "include L_matching (Eq. 2)"})
    use_item_recon_loss: bool = field(default=True, metadata={"help": "include L_item-recon (Eq. 3)"})
    use_text_recon_loss: bool = field(default=True, metadata={"help": "include L_text-recon (Eq. 4)"})
    use_rec_loss: bool = field(default=True, metadata={"help": "include L_rec (Eq. 5)"})
    match_loss: str = field(default="mse", metadata={"help": "mse (Eq. 2, paper) or infonce (contrastive, not in the paper)"})
    match_temperature: float = field(default=0.1, metadata={"help": "temperature of the infonce matching loss"})
    rec_score: str = field(default="dot", metadata={"help": "L_rec score: dot (Eq. 5) or mean (official code)"})
    train_items: str = field(default="last", metadata={"help": "last (paper) or all (A-LLMRec_all) items per user"})
    few_shot: int | None = field(default=None, metadata={"help": "train only on the prepared few-shot subset of K users (paper Table 6)"})
    encoder_activation: str = field(default="sigmoid", metadata={"help": "encoder non-linearity (official: sigmoid)"})
    cf_dropout_bug: bool = field(default=False, metadata={"help": "compute x^u with the CF model in train mode (official bug)"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, shuffling, negatives and dropout"})
    patience: int = field(
        default=5, metadata={"help": "early-stopping patience in epochs; 0 never stops early (the best epoch is still kept)"}
    )
    early_stopping_metric: str = field(
        default="mrr", metadata={"help": "mrr: valid q→e retrieval MRR (higher is better); loss: valid stage-1 loss"}
    )
    mixed_precision: str = field(default="auto", metadata={"help": "auto (bf16/fp16 on GPU, none on CPU), no, fp16 or bf16"})
    text_batch_size: int = field(default=256, metadata={"help": "texts per forward when caching / exporting embeddings"})
    max_steps_per_epoch: int | None = field(default=None, metadata={"help": "cap steps per epoch (smoke tests, benchmarks)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output directory"})
    show_progress: bool = field(default=True, metadata={"help": "tqdm progress bars"})

    def __post_init__(self):
        for name in ("epochs", "batch_size", "text_batch_size"):
            if getattr(self, name) <= 0:
                raise AllmrecError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise AllmrecError(f"--lr must be positive, got {self.lr}")
        if self.patience < 0:
            raise AllmrecError(f"--patience must be >= 0, got {self.patience}")
        if self.early_stopping_metric not in ("mrr", "loss"):
            raise AllmrecError(f"--early-stopping-metric must be mrr or loss, got {self.early_stopping_metric!r}")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise AllmrecError(f"--mixed-precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.few_shot is not None and self.few_shot <= 0:
            raise AllmrecError(f"--few-shot must be positive, got {self.few_shot}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch <= 0:
            raise AllmrecError(f"--max-steps-per-epoch must be positive, got {self.max_steps_per_epoch}")
        self.validate_scaling()


def _rows_of(batch, sl: slice):
    """Rows ``sl`` of a :class:`~allmrec.alignment.samples.Stage1Batch` (a gradient-accumulation micro-batch)."""
    return type(batch)(batch.user_ids[sl], batch.item_seq[sl], batch.pos_items[sl], batch.neg_items[sl])


class _Stage1Step:
    """Turns a :class:`Stage1Batch` into the model's inputs: frozen-CF x^u and E (no grad), and the text
    of each *distinct* item of the step (tokens, cached lower-layer states, or precomputed Q)."""

    def __init__(self, cf_model, config: Stage1Config, text_inputs, text_embeddings, device):
        self.cf = cf_model
        self.config = config
        self.text_inputs = text_inputs
        self.text_embeddings = text_embeddings  # (num_items+1, sbert_dim) when SBERT is frozen
        self.device = device

    def __call__(self, batch, reproduce_dropout_bug: bool = False) -> dict:
        import torch

        batch = batch.to(self.device)
        with torch.no_grad():
            if reproduce_dropout_bug:
                self.cf.train()  # official bug: SASRec's dropout stays on while x^u is computed
            try:
                x_u = self.cf.user_representation(batch.item_seq, batch.user_ids)
            finally:
                self.cf.eval()
            inputs = {
                "user_representation": x_u.float(),
                "pos_item_embeddings": self.cf.item_embeddings(batch.pos_items).float(),
                "neg_item_embeddings": self.cf.item_embeddings(batch.neg_items).float(),
            }
        if self.config.uses_text:
            unique, pos_index, neg_index = batch.unique_items()
            if self.text_embeddings is not None:
                inputs["text_embeddings"] = self.text_embeddings[unique]
            else:
                feats = self.text_inputs.features(unique.cpu())
                inputs["text_features"] = {k: v.to(self.device) for k, v in feats.items()}
            inputs["pos_text_index"], inputs["neg_text_index"] = pos_index, neg_index
        return inputs


def _term_values(out) -> dict[str, float]:
    vals = {"loss": float(out.loss.detach())}
    for term in LOSS_TERMS:
        t = getattr(out, f"loss_{term}")
        if t is not None:
            vals[term] = float(t.detach())
    return vals


def _validate(model, step, batches, num_items: int) -> dict:
    """Mean stage-1 loss terms on the fixed validation rows, and q → e retrieval accuracy@1 among the
    distinct valid positives."""
    import torch

    from .embeddings import _own_rank

    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    rows = 0
    joint = torch.zeros(num_items + 1, model.config.latent_dim)
    text = torch.zeros(num_items + 1, model.config.latent_dim)
    seen = torch.zeros(num_items + 1, dtype=torch.bool)
    try:
        with torch.no_grad():
            for batch in batches:
                out = model(**step(batch))
                for k, v in _term_values(out).items():
                    sums[k] = sums.get(k, 0.0) + v * len(batch)
                rows += len(batch)
                if out.pos_text is not None:
                    joint[batch.pos_items] = out.pos_joint.float().cpu()
                    text[batch.pos_items] = out.pos_text.float().cpu()
                    seen[batch.pos_items] = True
    finally:
        model.train(was_training)
    result = {k: v / rows for k, v in sums.items()}
    if int(seen.sum()) >= 2:
        rank = _own_rank(text[seen], joint[seen])
        result["acc@1"] = float((rank == 0).double().mean())
        result["mrr"] = float((1.0 / (rank.double() + 1)).mean())
        result["n_items"] = int(seen.sum())
    return result


def _build_text_embeddings(model, text_inputs, num_items: int, batch_size: int):
    """Q for every item with a frozen SBERT: computed once, eval mode (deterministic)."""
    import torch

    Q = torch.zeros(num_items + 1, model.config.sbert_dim, device=model.device)
    model.eval()
    with torch.no_grad():
        for chunk in text_inputs.length_sorted_batches(torch.arange(1, num_items + 1), batch_size):
            feats = {k: v.to(model.device) for k, v in text_inputs.features(chunk, with_cache=False).items()}
            Q[chunk.to(model.device)] = model.embed_texts(feats).float()
    model.train()
    return Q


def train_stage1(args: Stage1TrainingArguments, command: str | None = None) -> dict:
    """Train stage 1 and write ``args.out``; returns the training log (also saved as training_log.json)."""
    import torch
    from tqdm.auto import tqdm

    from ..cf import load_cf_model
    from ..data.dataset import PreparedDataset
    from ..utils.seeding import set_seed
    from .embeddings import (
        ALIGNMENT_REPORT_FILE,
        ITEM_EMBEDDINGS_FILE,
        alignment_report,
        compute_item_embeddings,
        save_item_embeddings,
    )
    from .modeling_stage1 import ALLMRecStage1Model
    from .samples import Stage1Sampler, validation_batches
    from .sbert import ItemTextInputs, configure_trainable_layers, embedding_dimension, load_sbert, transformer_parts
    from ..assets import asset_provenance, canonical_id

    timer = StageTimer()
    out_dir = Path(args.out)
    if out_dir.exists() and not args.overwrite and not args.resume_from:
        raise AllmrecError(f"output directory {out_dir} already exists; pass --overwrite to replace it")
    work_dir = out_dir.parent / f".{out_dir.name}.work"

    with timer("setup"):
        set_seed(args.seed)
        dataset = PreparedDataset.load(args.data)
        cf_model = load_cf_model(args.cf)
        # Unused parameters are normal here (BERT's pooler, a decoder whose loss is ablated).
        accelerator = build_accelerator(args.mixed_precision, find_unused_parameters=True)
        device = accelerator.device
        cf_model.to(device).eval().requires_grad_(False)
        maxlen = int(getattr(cf_model.config, "maxlen", 0) or dataset.manifest.get("options", {}).get("maxlen", 50))

        sbert = load_sbert(args.sbert, max_seq_length=args.sbert_max_seq_length)
        config = Stage1Config(
            cf_model_path=str(Path(args.cf).resolve()),
            cf_model_type=getattr(cf_model.config, "model_type", None),
            item_dim=int(cf_model.hidden_size),
            # the canonical Hub id (the offline asset's source repository) + what exactly was used: provenance only,
            # the fine-tuned SBERT itself is saved in the checkpoint's sbert/ folder
            sbert_name_or_path=canonical_id(args.sbert),
            sbert_source=asset_provenance(args.sbert),
            sbert_dim=embedding_dimension(sbert),
            sbert_max_seq_length=args.sbert_max_seq_length,
            encoder_activation=args.encoder_activation,
            alpha=args.alpha,
            beta=paper_beta(dataset.domain) if args.beta is None else args.beta,
            use_match_loss=args.use_match_loss,
            use_item_recon_loss=args.use_item_recon_loss,
            use_text_recon_loss=args.use_text_recon_loss,
            use_rec_loss=args.use_rec_loss,
            match_loss=args.match_loss,
            match_temperature=args.match_temperature,
            rec_score=args.rec_score,
            train_items=args.train_items,
            sbert_train_layers=args.sbert_train_layers,
            cf_dropout_bug=args.cf_dropout_bug,
        )
        model = ALLMRecStage1Model(config, sbert=sbert).to(device)
        configure_trainable_layers(model.sbert, config.sbert_train_layers)

        n_layers = config.sbert_train_layers
        cached_from = None
        if config.uses_text and n_layers:
            cached_from = transformer_parts(model.sbert).num_layers - n_layers
        # Under mixed precision the cache is stored in half precision (half the memory); it feeds
        # autocast layers anyway.
        cache_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision, torch.float32)
        text_inputs = ItemTextInputs(
            model.sbert, dataset.texts, cached_from_layer=cached_from, batch_size=args.text_batch_size,
            cache_dtype=cache_dtype, device=device, show_progress=args.show_progress and accelerator.is_local_main_process,
        )
        if cached_from is not None:
            logger.info("cached SBERT hidden states entering layer %d for %d items (%.1f MB)",
                        cached_from, dataset.num_items, text_inputs.cache_bytes / 2**20)
        text_embeddings = None
        if config.uses_text and config.sbert_frozen:
            text_embeddings = _build_text_embeddings(model, text_inputs, dataset.num_items, args.text_batch_size)
            text_embeddings.requires_grad_(False)

        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=args.lr, betas=(args.adam_beta1, args.adam_beta2))
        wrapped, optimizer = accelerator.prepare(model, optimizer)
        sampler = Stage1Sampler(
            dataset.train_sequences, dataset.num_items, maxlen, args.batch_size, config.train_items, seed=args.seed,
            only_users=dataset.few_shot_users(args.few_shot) if args.few_shot else None,
        )
        step = _Stage1Step(cf_model, config, text_inputs, text_embeddings, device)
        valid = validation_batches(dataset, maxlen)
        n_trainable = sum(p.numel() for p in trainable)
        logger.info(
            "stage 1: %d users, %d items, maxlen %d, %d trainable params (SBERT %s), losses %s, device %s, precision %s",
            len(sampler.users), dataset.num_items, maxlen, n_trainable,
            {None: "fine-tuned", 0: "frozen"}.get(n_layers, f"top {n_layers} layers"),
            "+".join(k for k, v in config.active_losses.items() if v), device, accelerator.mixed_precision,
        )

    # With the text path untrained there is no q to retrieve with; fall back to the held-out loss.
    stop_metric = args.early_stopping_metric if config.uses_text else "loss"
    if not valid:
        stop_metric = None  # nothing held out: every epoch "improves", the last one is kept
    log = {
        "command": command or " ".join(sys.argv),
        "args": dataclasses.asdict(args),
        "config": config.to_dict(),
        "dataset": str(Path(args.data).resolve()),
        "maxlen": maxlen,
        "train_users": int(len(sampler.users)),
        "valid_rows": int(sum(len(b) for b in valid)),
        "trainable_parameters": int(n_trainable),
        "device": str(device),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "early_stopping": {"metric": stop_metric, "patience": args.patience, "stopped_early": False},
        "epochs": [],
        "best_epoch": None,
    }

    from ..training.accumulation import accumulate_backward
    from ..training.checkpointing import TrainingStateManager, maybe_kill_for_testing

    steps_per_epoch = sampler.num_batches(accelerator.num_processes)
    if args.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.max_steps_per_epoch)
    # Loop position + bookkeeping: what a resumed run needs besides weights / optimiser / RNGs.
    loop = {"epoch": 1, "batch": 0, "sums": {}, "rows": 0, "step": 0, "best": float("inf"), "since_best": 0,
            "train_seconds": 0.0}
    states = TrainingStateManager(accelerator, out_dir, dataclasses.asdict(args), args.save_state_every, args.save_state_limit)
    if args.resume_from:
        saved = states.load(args.resume_from)
        loop, log = saved["loop"], saved["log"]
        log["resumed_from"] = {"state": str(args.resume_from), "step": loop["step"]}
    log["gradient_accumulation_steps"] = args.gradient_accumulation_steps
    train_start = time.perf_counter() - loop["train_seconds"]
    wrapped.train()
    for epoch in range(loop["epoch"], args.epochs + 1):
        t0 = time.perf_counter()
        first = loop["batch"] if epoch == loop["epoch"] else 0
        sums: dict[str, float] = dict(loop["sums"]) if first else {}
        rows = loop["rows"] if first else 0
        bar = tqdm(
            total=steps_per_epoch, initial=first, desc=f"stage1 epoch {epoch}/{args.epochs}",
            disable=not (args.show_progress and accelerator.is_local_main_process), leave=False,
        )
        i = first - 1
        # The sampler is a seeded generator: skipping = drawing and dropping the first batches, so the
        # negative-sampling stream continues exactly where the interrupted run stopped.
        batches = sampler.epoch(epoch, accelerator.process_index, accelerator.num_processes)
        for i, batch in enumerate(batches):
            if i >= steps_per_epoch:
                break
            if i < first:
                continue
            outs = accumulate_backward(
                accelerator, wrapped, len(batch), args.gradient_accumulation_steps,
                lambda sl: wrapped(**step(_rows_of(batch, sl), reproduce_dropout_bug=config.cf_dropout_bug)),
            )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for out, n in outs:
                for k, v in _term_values(out).items():
                    sums[k] = sums.get(k, 0.0) + v * n
            rows += len(batch)
            loop["step"] += 1
            bar.update(1)
            bar.set_postfix({k: f"{v / rows:.4f}" for k, v in sums.items()}, refresh=False)
            if states.due(loop["step"]):
                loop.update(epoch=epoch, batch=i + 1, sums=sums, rows=rows,
                            train_seconds=time.perf_counter() - train_start)
                states.save(loop["step"], {"loop": loop, "log": log})
            maybe_kill_for_testing(loop["step"])
        bar.close()
        train_means = {k: v / max(rows, 1) for k, v in sums.items()}
        train_seconds = time.perf_counter() - t0
        unwrapped = accelerator.unwrap_model(wrapped)
        valid_metrics = {}
        if valid:
            with accelerator.autocast():
                valid_metrics = _validate(unwrapped, step, valid, dataset.num_items)
        record = {
            "epoch": epoch,
            "train": train_means,
            "valid": valid_metrics,
            "rows": rows,
            "steps": i + 1 if rows else 0,
            "train_seconds": round(train_seconds, 3),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        log["epochs"].append(record)
        if stop_metric is None:
            signal = -epoch  # keep the last epoch
        elif stop_metric == "mrr":
            signal = -valid_metrics.get("mrr", 0.0)
        else:
            signal = valid_metrics["loss"]
        improved = signal < loop["best"]
        if improved:
            loop["best"], loop["since_best"] = signal, 0
            log["best_epoch"] = epoch
            if accelerator.is_main_process:
                with atomic_directory(work_dir / "best", overwrite=True) as tmp:
                    unwrapped.save_pretrained(tmp)
        else:
            loop["since_best"] += 1
        if accelerator.is_main_process:
            atomic_write_json(work_dir / TRAINING_LOG_FILE, log)
        logger.info(
            "epoch %d: train %s | valid %s%s (%.1fs)", epoch,
            " ".join(f"{k}={v:.4f}" for k, v in train_means.items()),
            " ".join(f"{k}={v:.4f}" for k, v in valid_metrics.items() if k != "n_items"),
            " *" if improved else "", record["seconds"],
        )
        if stop_metric and args.patience and loop["since_best"] >= args.patience:
            log["early_stopping"]["stopped_early"] = True
            logger.info("early stopping: valid %s has not improved for %d epochs", stop_metric, loop["since_best"])
            break
    timer.seconds["train"] = round(time.perf_counter() - train_start, 3)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with timer("export"):
            final = ALLMRecStage1Model.from_pretrained(str(work_dir / "best")).to(device)
            embeddings = compute_item_embeddings(final, cf_model, text_inputs, dataset.num_items, args.text_batch_size)
            report = alignment_report(embeddings["joint"], embeddings["text"], seed=args.seed)
            report["best_epoch"] = log["best_epoch"]
        log["timings"] = dict(timer.seconds)
        with atomic_directory(out_dir, overwrite=args.overwrite) as tmp:
            final.save_pretrained(tmp)
            save_item_embeddings(
                tmp / ITEM_EMBEDDINGS_FILE, embeddings,
                metadata={"num_items": str(dataset.num_items), "latent_dim": str(config.latent_dim),
                          "cf_model_path": config.cf_model_path, "dataset": log["dataset"]},
            )
            atomic_write_json(tmp / ALIGNMENT_REPORT_FILE, report)
            atomic_write_json(tmp / TRAINING_LOG_FILE, log)
        shutil.rmtree(work_dir, ignore_errors=True)
        log["alignment_report"] = report
        logger.info(
            "stage 1 done → %s: best epoch %s, q→e acc@1 %.3f (chance %.4f), ‖e−q‖ matched %.3f vs shuffled %.3f",
            out_dir, log["best_epoch"], report["retrieval"]["text_to_joint"]["acc@1"], report["retrieval"]["chance_acc@1"],
            report["distance"]["matched_mean"], report["distance"]["shuffled_mean"],
        )
    accelerator.wait_for_everyone()
    return log


__all__ = ["Stage1TrainingArguments", "train_stage1", "LOSS_TERMS", "TRAINING_LOG_FILE"]
