"""``allmrec evaluate``: score any checkpoint on the stored candidates of a prepared split.

Dispatch on what the checkpoint directory holds:

* ``config.json`` with ``model_type`` sasrec / gru4rec / nextitnet / ncf → the CF evaluator here;
* ``model_type`` allmrec → ``allmrec.model.inference.evaluate_checkpoint(args)``;
* ``model_type`` tallrec, or a PEFT adapter directory (``adapter_config.json``) →
  ``allmrec.baselines.evaluate.evaluate_checkpoint(args)``.

Each evaluator returns the results dict (:mod:`allmrec.evaluation.results`); this command writes
it to ``--out`` and prints a compact table.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ..errors import AllmrecError, CheckpointError

CF_TYPES = ("sasrec", "gru4rec", "nextitnet", "ncf")  # kept in sync with allmrec.cf.loading.CF_MODEL_TYPES (tested)
POPULARITY_MODEL = "pop"  # allmrec.cf.popularity.POPULARITY_MODEL (that module imports torch; this one stays light)
SCORER_KINDS = ("cf", "pop")  # checkpoint kinds scored by the CF evaluator (no LLM, no soft tokens)


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint (CF, A-LLMRec, TALLRec) on a prepared split → results JSON",
        description=(
            "Score a checkpoint on the candidate sets stored in a prepared dataset (1 target + 19 fixed "
            "negatives per user; never re-drawn) and write Hit@1/5/10, NDCG@10, MRR overall and per scenario "
            "(warm/mid/cold items, cold users). Ties count against the target. CF models also get full-ranking "
            "HR@10/NDCG@10 over the whole catalogue (history excluded)."
        ),
    )
    p.add_argument("--model", required=True, help="checkpoint directory (CF model, A-LLMRec stage-2, TALLRec/PEFT adapter), llm:NAME "
                   "(LLM-Only: the frozen LLM zero-shot, e.g. llm:smollm2-135m-instruct) or pop (MostPop: candidates "
                   "ranked by their training interaction count)")
    p.add_argument("--data", required=True, help="prepared dataset directory (from `allmrec data prepare`)")
    p.add_argument("--split", default="test", choices=["test", "valid", "cold_user_test"], help="which split to score (default: test)")
    p.add_argument("--out", required=True, help="where to write the results JSON")
    p.add_argument("--batch-size", type=int, default=256, help="users per scoring batch (default: 256)")
    p.add_argument("--mode", choices=["generate", "rank"], default=None,
                   help="LLM models: generate a title (the paper's protocol) or rank candidates by likelihood; "
                        "CF models always rank (default: the evaluator's own choice)")
    p.add_argument("--item-embedding", choices=["cf", "text", "auto"], default=None,
                   help="A-LLMRec: which stage-1 item embedding feeds the LLM: cf (e_i, the paper's default), text "
                        "(q_i) or auto (q_i for items unseen in training: the paper's A-LLMRec (SBERT)); "
                        "default: the checkpoint's own setting; ignored by CF/TALLRec")
    p.add_argument("--no-full-ranking", dest="full_ranking", action="store_false",
                   help="CF models: skip full-catalogue HR@10/NDCG@10")
    p.add_argument("--max-users", type=int, default=None,
                   help="score a seeded subset of this many users (the same users for every model and seed); "
                        "default: every eligible user")
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the --max-users subset (default: 0)")
    p.add_argument("--stop-at-answer", action="store_true", default=None,
                   help="generate mode: end each answer at its closing quote (exact Hit@1 is unchanged; much faster "
                        "for models that keep talking; default: decode up to the token limit like the authors)")
    p.add_argument("--ablate", choices=["shuffle-users", "shuffle-items", "shuffle-history"], default=None,
                   help="A-LLMRec / MLP-LLM: destroy the CF signal to check the model uses it: shuffle-users computes "
                        "each user's soft token from another evaluated user's history, shuffle-items gives every item "
                        "another item's soft token (prompt text unchanged). shuffle-history permutes every user's "
                        "history (prompt and CF input alike): does the model use order? All seeded by --subset-seed. "
                        "CF models and pop take shuffle-users and shuffle-history (the same permutations) (default: none)")
    p.add_argument("--match-fusion", type=float, default=None, metavar="W",
                   help="A-LLMRec / MLP-LLM, rank mode: score = log softmax(LLM) + W x log softmax(matching head "
                        "cos(O_u, O_i)/tau) over the candidates (not in the paper; needs a listwise / index-lora "
                        "checkpoint; choose W on --split valid) (default: 0, the LLM alone)")
    p.add_argument("--cross-domain", action="store_true",
                   help="the model was trained on another dataset (paper Table 7): text-only models (TALLRec, LLM-Only) "
                        "score this catalogue by its titles; A-LLMRec reaches it through the text path (every item "
                        "embedded by the stage-1 SBERT and text encoder, CF rows decoded by the item decoder: see "
                        "allmrec.model.cross_domain); CF models and MLP-LLM (no stage 1) are refused")
    p.add_argument("--stage1", default=None, metavar="DIR",
                   help="--cross-domain with an A-LLMRec model: the stage-1 output it was trained on (default: the "
                        "stage1_path its config records)")
    p.add_argument("--llm-dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="LLM models: weight dtype of the frozen LLM: auto (bf16 on a GPU, fp32 on CPU), float32, "
                        "bfloat16 (fast on CPUs with AMX/AVX512-BF16), float16 (default: auto)")
    p.add_argument("--llm-quantization", choices=["none", "8bit", "4bit"], default="none",
                   help="LLM models: load the frozen LLM in 8-bit or 4-bit with bitsandbytes (CUDA only; "
                        "pip install 'allmrec[quantization]'; the paper ran OPT-6.7B in 8-bit) (default: none)")
    p.add_argument("--llm-device-map", default=None,
                   help="LLM models: device_map for the LLM, e.g. auto to spread a model too big for one GPU over "
                        "all visible GPUs (one process) (default: this process's device)")
    p.set_defaults(func=run_evaluate)


def checkpoint_kind(path: str | Path) -> str:
    """``cf`` / ``allmrec`` / ``tallrec`` / ``llm`` / ``pop`` for a checkpoint directory, ``llm:NAME`` or ``pop``;
    CheckpointError otherwise."""
    if str(path).startswith("llm:"):  # LLM-Only: a frozen LLM named on the command line, no checkpoint
        return "llm"
    if str(path) == POPULARITY_MODEL:  # MostPop: training counts of the dataset, no checkpoint
        return "pop"
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {path} does not exist")
    if (path / "adapter_config.json").is_file():
        return "tallrec"
    cfg = path / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{path} has neither config.json nor adapter_config.json; it is not a checkpoint")
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise CheckpointError(f"{cfg} is corrupt ({e})") from e
    if model_type in CF_TYPES:
        return "cf"
    if model_type in ("allmrec", "tallrec"):
        return model_type
    raise CheckpointError(f"{cfg}: unknown model_type {model_type!r}; `allmrec evaluate` handles {', '.join(CF_TYPES)}, allmrec, tallrec")


def _external_evaluator(module: str):
    try:
        return importlib.import_module(module).evaluate_checkpoint
    except (ImportError, AttributeError) as e:
        raise AllmrecError(f"the evaluator {module}.evaluate_checkpoint is not available in this install ({e})") from e


def evaluate_command(args) -> str:
    """``allmrec evaluate ...`` with every option spelled out."""
    import shlex

    parts = ["allmrec", "evaluate", "--model", str(args.model), "--data", str(args.data), "--split", args.split,
             "--out", str(args.out), "--batch-size", str(args.batch_size)]
    if args.mode:
        parts += ["--mode", args.mode]
    if args.item_embedding:
        parts += ["--item-embedding", args.item_embedding]
    if not args.full_ranking:
        parts.append("--no-full-ranking")
    if getattr(args, "max_users", None):
        parts += ["--max-users", str(args.max_users), "--subset-seed", str(getattr(args, "subset_seed", 0))]
    if getattr(args, "stop_at_answer", None):
        parts.append("--stop-at-answer")
    if getattr(args, "ablate", None):
        parts += ["--ablate", args.ablate]
    if getattr(args, "match_fusion", None):
        parts += ["--match-fusion", str(args.match_fusion)]
    if getattr(args, "cross_domain", False):
        parts.append("--cross-domain")
    if getattr(args, "stage1", None):
        parts += ["--stage1", str(args.stage1)]
    if getattr(args, "llm_dtype", "auto") not in (None, "auto"):
        parts += ["--llm-dtype", args.llm_dtype]
    if getattr(args, "llm_quantization", "none") not in (None, "none"):
        parts += ["--llm-quantization", args.llm_quantization]
    if getattr(args, "llm_device_map", None):
        parts += ["--llm-device-map", args.llm_device_map]
    return " ".join(shlex.quote(p) for p in parts)


def run_evaluate(args) -> int:
    from .results import format_table, write_results

    if args.batch_size <= 0:
        raise AllmrecError(f"--batch-size must be positive, got {args.batch_size}")
    if getattr(args, "max_users", None) is not None and args.max_users <= 0:
        raise AllmrecError(f"--max-users must be positive, got {args.max_users}")
    kind = checkpoint_kind(args.model)
    if getattr(args, "cross_domain", False) and kind in SCORER_KINDS:
        raise AllmrecError(f"--cross-domain: {args.model} is a CF model whose item embeddings belong to its training "
                           "catalogue; evaluate A-LLMRec (text path) or a text-only model (TALLRec, llm:NAME) instead")
    if getattr(args, "stage1", None) and not getattr(args, "cross_domain", False):
        raise AllmrecError("--stage1 is only read with --cross-domain (the model's own tables are used otherwise)")
    if getattr(args, "match_fusion", None) and kind != "allmrec":
        raise AllmrecError(f"--match-fusion needs an A-LLMRec / MLP-LLM checkpoint (it has a matching head); "
                           f"{args.model} is a {kind} model")
    ablate = getattr(args, "ablate", None)
    if ablate and not (kind == "allmrec" or (kind in SCORER_KINDS and ablate in ("shuffle-users", "shuffle-history"))):
        raise AllmrecError(f"--ablate {ablate} needs a model that reads the CF signal (A-LLMRec / MLP-LLM; CF models: "
                           f"shuffle-users or shuffle-history); {args.model} is a {kind} model")
    # The effective command (defaults included), rebuilt from the parsed options so it is right
    # however main() was called; evaluators may read it from args.command.
    args.command = evaluate_command(args)
    if kind in SCORER_KINDS:
        from .cf_evaluator import evaluate_cf_checkpoint

        evaluate = evaluate_cf_checkpoint
    elif kind == "allmrec":
        evaluate = _external_evaluator("allmrec.model.inference")
    else:  # tallrec adapters and llm:NAME (LLM-Only)
        evaluate = _external_evaluator("allmrec.baselines.evaluate")
    results = evaluate(args)
    from ..training.distributed import is_main_process

    if not is_main_process():  # every process scored a slice and holds the gathered results; one writes
        return 0
    if results is None:  # an evaluator that wrote --out itself
        if not Path(args.out).is_file():
            raise AllmrecError(f"the {kind} evaluator returned no results and wrote nothing to {args.out}")
        results = json.loads(Path(args.out).read_text(encoding="utf-8"))
    else:
        if not results.get("command"):
            results["command"] = args.command
        write_results(args.out, results)
    print(format_table(results))
    print(f"results written to {args.out}")
    return 0


__all__ = ["register", "run_evaluate", "checkpoint_kind", "evaluate_command"]
