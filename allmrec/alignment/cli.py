"""``allmrec train stage1``: align a frozen CF model's item embeddings with item text (paper §4.1).

Heavy imports (torch, transformers, sentence-transformers) happen inside the handler so that
``allmrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

_DESCRIPTION = """\
Stage 1 of A-LLMRec: train the item autoencoder f_I (d -> 128 -> d) and the text autoencoder f_T
(SBERT dim -> 128 -> SBERT dim) with L_match + alpha*L_item-recon + beta*L_text-recon + L_rec
(paper Eq. 2-6), fine-tuning SBERT, on top of a frozen CF model.

Writes OUT/: config.json + model.safetensors (autoencoders), sbert/ (fine-tuned SBERT),
item_embeddings.safetensors (joint = e_i and text = q_i for every item, row 0 zeros),
alignment_report.json and training_log.json.

Early stopping keeps the epoch with the best retrieval MRR of q_i -> e_i on the valid users' items.
On small data (ml-100k: 30 steps per epoch) the paper's MSE matching barely aligns items, and a
fine-tuned SBERT can collapse every q_i to one point (check alignment_report.json);
--match-loss infonce (not in the paper) with --lr 1e-3 aligns them (ml-100k: q->e acc@1 0.31).

Example (offline, bundled MiniLM):
  allmrec train stage1 --data data/ml-100k --cf runs/cf/sasrec --out runs/stage1/minilm --sbert all-minilm-l6-v2
"""


def register_train(sub) -> None:
    p = sub.add_parser(
        "stage1",
        help="stage 1: align CF item embeddings with item text (autoencoders + fine-tuned SBERT)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="prepared dataset directory (`allmrec data prepare`)")
    p.add_argument("--cf", required=True, help="frozen CF checkpoint directory (`allmrec train cf`)")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (paper: 10)")
    p.add_argument("--batch-size", type=int, default=32, help="users per step (paper: 32)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate, betas (0.9, 0.98) (paper: 1e-4)")
    p.add_argument(
        "--sbert", default="sentence-transformers/nq-distilbert-base-v1",
        help="sentence-transformers model id or path; offline use `all-minilm-l6-v2` (bundled). "
        "Default: the official code's nq-distilbert-base-v1",
    )
    sb = p.add_mutually_exclusive_group()
    sb.add_argument("--freeze-sbert", action="store_true", help="do not fine-tune SBERT (Table 8 ablation)")
    sb.add_argument(
        "--sbert-train-layers", type=int, metavar="N",
        help="fine-tune only SBERT's top N transformer layers; the frozen lower layers' outputs are cached",
    )
    p.add_argument("--sbert-max-length", type=int, help="token limit of item texts (default: the SBERT model's own)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of L_item-recon (paper Table 3: 0.5)")
    p.add_argument(
        "--beta", type=float, default=None,
        help="weight of L_text-recon (default: paper Table 3 by dataset domain: movie/game 0.5, other 0.2)",
    )
    p.add_argument("--no-match", action="store_true", help="drop L_matching (Table 8 ablation)")
    p.add_argument("--no-item-recon", action="store_true", help="drop L_item-recon (Table 8 ablation)")
    p.add_argument("--no-text-recon", action="store_true", help="drop L_text-recon (Table 8 ablation)")
    p.add_argument("--no-rec", action="store_true", help="drop L_rec (Table 8 ablation)")
    p.add_argument("--match-loss", choices=("mse", "infonce"), default="mse",
                   help="mse: Eq. 2 (paper); infonce: contrastive matching over the step's items (not in the paper)")
    p.add_argument("--match-temperature", type=float, default=0.1, help="temperature of --match-loss infonce")
    p.add_argument("--rec-score", choices=("dot", "mean"), default="dot",
                   help="L_rec score: dot product (Eq. 5) or mean over dimensions (official code)")
    p.add_argument("--all-items", action="store_true", help="train on every item of each sequence (A-LLMRec_all)")
    p.add_argument("--few-shot", type=int, default=None, metavar="K",
                   help="train only on the prepared few-shot subset of K users (paper Table 6; see `allmrec data stats`)")
    p.add_argument("--encoder-activation", choices=("sigmoid", "relu", "tanh", "gelu", "identity"), default="sigmoid",
                   help="encoder non-linearity (official code: sigmoid)")
    p.add_argument("--cf-dropout-bug", action="store_true",
                   help="compute x^u with the CF model's dropout on, as the official code does by mistake")
    p.add_argument("--patience", type=int, default=5,
                   help="early-stopping patience in epochs; 0 never stops early (the best epoch is still kept)")
    p.add_argument("--early-stopping-metric", choices=("mrr", "loss"), default="mrr",
                   help="mrr: retrieval MRR of q -> e among the valid items (default); loss: held-out stage-1 loss")
    p.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto",
                   help="auto: bf16 (or fp16) on GPU, fp32 on CPU; bf16 autocast on a CPU on request")
    p.add_argument("--max-steps-per-epoch", type=int, help="cap the steps of each epoch (smoke tests)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling, negatives, dropout")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--no-progress", action="store_true", help="disable progress bars")
    from ..training.checkpointing import add_scaling_options

    add_scaling_options(p)
    p.set_defaults(func=run_train)


def args_to_training_arguments(args):
    from ..training.checkpointing import scaling_kwargs
    from .training import Stage1TrainingArguments

    train_layers = 0 if args.freeze_sbert else args.sbert_train_layers
    return Stage1TrainingArguments(
        data=args.data,
        cf=args.cf,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        sbert=args.sbert,
        sbert_train_layers=train_layers,
        sbert_max_seq_length=args.sbert_max_length,
        alpha=args.alpha,
        beta=args.beta,
        use_match_loss=not args.no_match,
        use_item_recon_loss=not args.no_item_recon,
        use_text_recon_loss=not args.no_text_recon,
        use_rec_loss=not args.no_rec,
        match_loss=args.match_loss,
        match_temperature=args.match_temperature,
        rec_score=args.rec_score,
        train_items="all" if args.all_items else "last",
        few_shot=args.few_shot,
        encoder_activation=args.encoder_activation,
        cf_dropout_bug=args.cf_dropout_bug,
        seed=args.seed,
        patience=args.patience,
        early_stopping_metric=args.early_stopping_metric,
        mixed_precision=args.mixed_precision,
        max_steps_per_epoch=args.max_steps_per_epoch,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
        **scaling_kwargs(args),
    )


def run_train(args) -> int:
    from .training import train_stage1

    train_stage1(args_to_training_arguments(args), command="allmrec " + " ".join(sys.argv[1:]))
    return 0


__all__ = ["register_train", "run_train", "args_to_training_arguments"]
