"""The model card: ``MODEL_CARD.md`` (a Jinja template) rendered with ``huggingface_hub.ModelCard``.

Everything on the card is read from files, never typed in: the checkpoint (``config.json`` /
``adapter_config.json``, ``training_log.json``, file sizes), the prepared dataset's ``manifest.json``
(preprocessing options, counts, input hashes, candidate protocol) and the evaluation results JSON files
(``allmrec evaluate``). The metadata block is a :class:`~huggingface_hub.ModelCardData`: ``library_name``,
``base_model``, ``datasets``, ``tags``, ``pipeline_tag``, ``license`` and a ``model-index`` with one entry
per metric, scenario and results file of *this* model; results of other models (SASRec, TALLRec, ...) only
feed the comparison table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from allmrec.errors import AllmrecError, DataError

from .checkpoint import ALLMREC, TALLREC, CheckpointInfo

#: the template shipped with the package (hub/MODEL_CARD.md links to the repository root's MODEL_CARD.md)
TEMPLATE_PATH = Path(__file__).resolve().with_name("MODEL_CARD.md")

#: allmrec asset names → the Hub repositories they are copies of (for ``base_model`` metadata)
HUB_IDS = {
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "gemma-3-270m": "google/gemma-3-270m",
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
}
#: what the offline assets really are (the card must not pretend they are the Hub weights)
ASSET_NOTES = {
    "smollm2-135m-instruct": (
        "The LLM used in training is allmrec's offline SmolLM2 asset: the **Q4_1 GGUF** of "
        "`HuggingFaceTB/SmolLM2-135M-Instruct` dequantized to fp32 (same architecture and tokenizer). Loading the "
        "original Hub weights works (sizes match) but gives slightly different scores; for exact reproduction load the "
        "same GGUF file with `AutoModelForCausalLM.from_pretrained(..., gguf_file=...)`."
    ),
    "gemma-3-270m": (
        "The LLM used in training is allmrec's offline Gemma-3-270M asset (a Q4_K_M GGUF dequantized to fp32), not the "
        "original `google/gemma-3-270m` weights; scores with the original weights will differ slightly."
    ),
}
#: prepared-dataset names / source formats → Hub dataset ids or display names
DATASET_HUB_IDS = {"amazon2023": "McAuley-Lab/Amazon-Reviews-2023"}
DATASET_DISPLAY_NAMES = {"ml-100k": "MovieLens-100K"}

MODEL_LABELS = {
    "allmrec": "A-LLMRec", "tallrec": "TALLRec", "sasrec": "SASRec", "gru4rec": "GRU4Rec",
    "nextitnet": "NextItNet", "ncf": "NCF", "llm_only": "LLM-Only", "llm-only": "LLM-Only",
    "mlp_llm": "MLP-LLM", "mlp-llm": "MLP-LLM",
}
#: results-JSON metric key → (model-index metric type, display name)
METRICS = {
    "hit@1": ("hit_rate", "Hit@1"),
    "hit@5": ("hit_rate", "Hit@5"),
    "hit@10": ("hit_rate", "Hit@10"),
    "ndcg@10": ("ndcg", "NDCG@10"),
    "mrr": ("mrr", "MRR"),
    "hit@1_lenient": ("hit_rate", "Hit@1 (lenient substring rule)"),
    "valid_rate": ("accuracy", "Valid-answer rate"),
    "full_hr@10": ("hit_rate", "HR@10 (full ranking)"),
    "full_ndcg@10": ("ndcg", "NDCG@10 (full ranking)"),
}
#: results of these model types come from an LLM (their `mode` matters); the others are CF models
LLM_MODEL_TYPES = ("allmrec", "tallrec", "llm_only", "llm-only", "mlp_llm", "mlp-llm")
RESULTS_REQUIRED = ("model_type", "dataset", "split", "n_users", "metrics", "scenarios", "candidate_fingerprint")
SCENARIO_ORDER = ("warm", "mid", "cold", "cold_user")

ALLMREC_BIBTEX = """@inproceedings{kim2024allmrec,
  title     = {Large Language Models meet Collaborative Filtering: An Efficient All-round LLM-based Recommender System},
  author    = {Kim, Sein and Kang, Hongseok and Choi, Seungyoon and Kim, Donghyun and Yang, Minchul and Park, Chanyoung},
  booktitle = {Proceedings of the 30th ACM SIGKDD Conference on Knowledge Discovery and Data Mining (KDD '24)},
  year      = {2024},
  publisher = {ACM},
  doi       = {10.1145/3637528.3671931}
}"""
TALLREC_BIBTEX = """@inproceedings{bao2023tallrec,
  title     = {TALLRec: An Effective and Efficient Tuning Framework to Align Large Language Model with Recommendation},
  author    = {Bao, Keqin and Zhang, Jizhi and Zhang, Yang and Wang, Wenjie and Feng, Fuli and He, Xiangnan},
  booktitle = {Proceedings of the 17th ACM Conference on Recommender Systems (RecSys '23)},
  year      = {2023},
  publisher = {ACM}
}"""


# ---------------------------------------------------------------------------------------------- inputs
def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read one results JSON (the ``allmrec evaluate`` schema) and check the fields the card uses."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(f"results file {path} does not exist; write it with `allmrec evaluate --out {path.name}`") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"results file {path} is not valid JSON ({e}); re-run `allmrec evaluate`") from e
    if not isinstance(results, dict):
        raise DataError(f"results file {path} must hold a JSON object (the `allmrec evaluate` schema)")
    missing = [k for k in RESULTS_REQUIRED if k not in results]
    if missing:
        raise DataError(f"results file {path} lacks {', '.join(missing)}; it was not written by `allmrec evaluate`")
    if not isinstance(results["metrics"], dict) or not isinstance(results["scenarios"], dict):
        raise DataError(f"results file {path}: 'metrics' and 'scenarios' must be JSON objects")
    return results


def load_manifest(data_dir: str | os.PathLike) -> dict[str, Any]:
    """``manifest.json`` of a prepared dataset directory (``allmrec data prepare``)."""
    path = Path(data_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(f"{path} does not exist; pass --data <the prepared dataset directory>") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is corrupt ({e}); re-run `allmrec data prepare`") from e
    if not isinstance(manifest, dict) or "options" not in manifest or "counts" not in manifest:
        raise DataError(f"{path} is not a prepared-dataset manifest (no options/counts); re-run `allmrec data prepare`")
    from allmrec.data.hub import hub_source

    source = hub_source(data_dir)  # pushed with `allmrec data push` / pulled from hub:REPO: the card links it
    return {**manifest, "hub_dataset": source} if source else manifest


def check_results_match_manifest(results: Sequence[Mapping[str, Any]], manifest: Mapping[str, Any], names: Sequence[str]) -> None:
    """Results must come from the prepared dataset the card describes: same candidate sets (fingerprints)."""
    fingerprints = manifest.get("candidate_fingerprints") or {}
    for name, r in zip(names, results):
        if r.get("dataset") != manifest.get("name"):
            continue  # another dataset (e.g. a cross-domain result): reported, not checked against this manifest
        expected = fingerprints.get(r["split"])
        if expected and r["candidate_fingerprint"] != expected:
            raise DataError(
                f"results file {name} was computed on other {r['split']} candidates (fingerprint "
                f"{r['candidate_fingerprint'][:12]}…) than the prepared dataset's ({expected[:12]}…); evaluate on the same "
                f"prepared dataset or pass the matching --data"
            )


# ---------------------------------------------------------------------------------------------- naming
def asset_name(name: str | None) -> str | None:
    """The allmrec asset behind ``name``: the short name itself or its converted folder (``<asset>-f32``)."""
    if not name:
        return None
    for candidate in (name.lower(), Path(name).name.lower().removesuffix("-f32")):
        if candidate in HUB_IDS:
            return candidate
    return None


def hub_id(name: str | None) -> str | None:
    """A Hub repository id for ``name`` (asset names and their converted folders mapped; other local paths → ``None``)."""
    if not name:
        return None
    if asset_name(name):
        return HUB_IDS[asset_name(name)]
    looks_like_id = name.count("/") == 1 and not name.startswith((".", "/", "~")) and not os.path.exists(name)
    return name if looks_like_id else None


def model_label(results: Mapping[str, Any]) -> str:
    model_type = str(results.get("model_type"))
    # MLP-LLM is an A-LLMRec checkpoint on raw CF embeddings (model_type allmrec): its results say so in "baseline"
    label = MODEL_LABELS.get(results.get("baseline") or model_type, model_type)
    if model_type in LLM_MODEL_TYPES:
        details = [str(results["mode"])] if results.get("mode") else []
        if results.get("item_embedding") and results.get("item_embedding") != "cf":
            details.append(f"{results['item_embedding']} item embeddings")
    else:  # CF models only rank; their loss is what tells two runs apart
        details = [f"{results['loss_type']} loss"] if results.get("loss_type") else []
    return f"{label} ({', '.join(details)})" if details else label


def _dataset_display(name: str | None) -> str:
    if not name:
        return "unknown dataset"
    return f"{DATASET_DISPLAY_NAMES[name]} (`{name}`)" if name in DATASET_DISPLAY_NAMES else f"`{name}`"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- sections
def _metric_columns(results: Sequence[Mapping[str, Any]]) -> list[str]:
    present: list[str] = []
    for r in results:
        for k in r["metrics"]:
            if k not in present:
                present.append(k)
    ordered = [k for k in METRICS if k in present]
    return ordered + [k for k in present if k not in ordered]


def _scenario_rows(r: Mapping[str, Any]):
    yield "all users", r.get("n_users"), r.get("metrics") or {}
    scenarios = r.get("scenarios") or {}
    for key in [k for k in SCENARIO_ORDER if k in scenarios] + [k for k in scenarios if k not in SCENARIO_ORDER]:
        block = scenarios[key] or {}
        yield f"{key} items" if key in ("warm", "mid", "cold") else key.replace("_", " "), block.get("n_users"), block.get("metrics")


SCENARIO_KEYS = {"warm items": "warm", "mid items": "mid", "cold items": "cold", "cold user": "cold_user"}
INTERVAL_NOTE = "[low, high]: 95 % bootstrap interval over the evaluated users (1,000 seeded resamples)."


def _interval(r: Mapping[str, Any], metric: str, scenario: str | None) -> tuple[float, float] | None:
    """The 95 % interval of ``metric``: the file's own for all users, else a bootstrap of its per-user values."""
    if scenario is None:
        iv = (r.get("intervals") or {}).get(metric)
        return tuple(iv) if iv else None
    per_user = r.get("per_user") or {}
    if metric not in per_user or "scenario" not in per_user:
        return None
    from allmrec.evaluation.statistics import bootstrap_interval

    values = [v for v, s in zip(per_user[metric], per_user["scenario"]) if s == scenario]
    return bootstrap_interval(values) if values else None


def _fmt_with_interval(r: Mapping[str, Any], metrics: Mapping[str, Any] | None, metric: str, scenario: str | None) -> str:
    value = (metrics or {}).get(metric)
    iv = _interval(r, metric, scenario) if value is not None and metric in INTERVAL_METRICS else None
    return _fmt(value) + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "")


INTERVAL_METRICS = ("hit@1", "hit@5", "hit@10", "ndcg@10", "mrr")


def results_section(own: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    parts = []
    for name, r in own:
        cols = _metric_columns([r])
        rows = [[label, _fmt(n)] + ([_fmt_with_interval(r, m, c, SCENARIO_KEYS.get(label)) for c in cols] if m
                                    else ["–"] * len(cols))
                for label, n, m in _scenario_rows(r)]
        header = f"**{model_label(r)} on {_dataset_display(r.get('dataset'))}, `{r['split']}` split** (`{name}`"
        if r.get("user_subset"):
            sub = r["user_subset"]
            header += f"; a seeded subset of {sub.get('max_users')} of {r.get('users_in_split')} users, seed {sub.get('seed')}"
        header += ")"
        parts.append(header + "\n\n" + _table(["users", "n"] + [METRICS.get(c, (None, c))[1] for c in cols], rows))
    if any(r.get("intervals") for _, r in own):
        parts.append(INTERVAL_NOTE)
    return "\n\n".join(parts)


def comparison_section(all_results: Sequence[tuple[str, Mapping[str, Any]]], info: CheckpointInfo) -> str:
    """One table per (dataset, split, candidate set): only numbers measured on identical candidates share a table."""
    groups: dict[tuple, list] = {}
    for name, r in all_results:
        groups.setdefault((r.get("dataset"), r["split"], r["candidate_fingerprint"]), []).append((name, r))
    if len(all_results) < 2:
        return ""
    parts = []
    for (dataset, split, fp), members in groups.items():
        cols = [("hit@1", None), ("hit@1", "warm"), ("hit@1", "cold"), ("ndcg@10", None), ("mrr", None)]
        cols = [(m, s) for m, s in cols if any(_value(r, m, s) is not None for _, r in members)]
        header = ["model", "users"] + [METRICS[m][1] + (f" ({s})" if s else "") for m, s in cols]
        rows = []
        for name, r in members:
            label = model_label(r)
            if is_own_results(r, info):
                label = f"**{label}** (this model)"
            rows.append([label, _fmt(r.get("n_users"))] + [
                _fmt(_value(r, m, s)) + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if m == "hit@1" and s is None
                                         and (iv := _interval(r, m, None)) else "") for m, s in cols])
        parts.append(
            f"{_dataset_display(dataset)}, `{split}` split, candidate set `{str(fp)[:12]}…` (identical for every row):\n\n"
            + _table(header, rows)
        )
    if len(groups) > 1:
        parts.append("Rows in different tables were measured on different data or candidate sets and are not comparable.")
    return "\n\n".join(parts)


def _value(r: Mapping[str, Any], metric: str, scenario: str | None):
    block = r.get("metrics") if scenario is None else ((r.get("scenarios") or {}).get(scenario) or {}).get("metrics")
    return (block or {}).get(metric)


def protocol_section(all_results: Sequence[tuple[str, Mapping[str, Any]]], manifest: Mapping[str, Any] | None) -> str:
    options = (manifest or {}).get("options") or {}
    n_cand = options.get("num_candidates") or next((r.get("num_candidates") for _, r in all_results if r.get("num_candidates")), 20)
    lines = [
        f"- **Task:** next-item recommendation with leave-one-out splits (the last interaction of every user is the test "
        f"target, the one before it the validation target). Each evaluated user has **{n_cand} candidates: the target and "
        f"{int(n_cand) - 1} negatives** drawn uniformly from items the user never interacted with, seeded and drawn once "
        f"when the dataset is prepared; every model below is scored on exactly those candidates "
        f"(the `candidate_fingerprint` of each results file proves it).",
    ]
    if manifest and manifest.get("candidates"):
        lines.append(f"- **Candidate sampling (from the manifest):** {manifest['candidates']}.")
    warm, cold = options.get("warm_fraction"), options.get("cold_fraction")
    if warm is not None and cold is not None:
        lines.append(
            f"- **Scenarios:** a test user is *warm*, *mid* or *cold* by the popularity of the target item in the training "
            f"data: warm = the {warm:.0%} most-interacted items, cold = the {cold:.0%} least, mid = the rest (the paper's "
            f"warm/cold item split)."
        )
    modes = {r.get("mode") for _, r in all_results if r.get("mode")}
    if "generate" in modes:
        gen = next((r.get("generation") for _, r in all_results if r.get("generation")), {}) or {}
        lines.append(
            "- **`generate` mode (the paper's protocol):** the LLM writes an answer greedily"
            + (f" (repetition penalty {gen['repetition_penalty']}, at most {gen.get('max_new_tokens')} new tokens)" if gen else "")
            + "; **Hit@1** = the answer names the target (the first candidate title found in the answer, after normalising "
            "case and punctuation). *Hit@1 (lenient)* is the authors' code rule (the target title is a substring of the "
            "answer); *valid-answer rate* = share of answers that name any candidate."
        )
    if "rank" in modes:
        ranked_formats = {r.get("answer_format", "title") for _, r in all_results if r.get("mode") == "rank"}
        lines.append(
            "- **`rank` mode:** every candidate's title (+ EOS) is scored by its log-likelihood after the prompt and the "
            "candidates are ranked by that score, which gives Hit@k / NDCG@10 / MRR as well."
            + (" Models with one-label answers (`answer_format` index) list the candidates with labels and rank them by "
               "the log-probability of each label as the answer's single token." if "index" in ranked_formats else "")
        )
    ranked = [r for _, r in all_results if r.get("mode") != "generate"]
    for rule in sorted({r.get("rank_rule") for r in ranked if r.get("rank_rule")}):
        lines.append(f"- **Ties (ranked scores):** {rule}.")
    if not all_results:
        lines.append("- No results files were given, so no numbers are reported on this card.")
    return "\n".join(lines)


def training_data_section(manifest: Mapping[str, Any] | None) -> str:
    if not manifest:
        return ""
    o, c = manifest.get("options") or {}, manifest.get("counts") or {}
    hub = manifest.get("hub_dataset") or {}
    lines = [f"The prepared data is on the Hub: [`{hub['repo_id']}`](https://huggingface.co/datasets/{hub['repo_id']}) "
             f"(revision `{hub.get('revision', 'main')}`; load it with `PreparedDataset.load(\"hub:{hub['repo_id']}\")`).", ""] if hub.get("repo_id") else []
    lines += [
        f"Prepared with `allmrec data prepare` (allmrec {manifest.get('allmrec_version', '?')}) from "
        f"{_dataset_display(manifest.get('name'))} in `{manifest.get('format', '?')}` format"
        + (f" (`{manifest['created_by']}`)" if manifest.get("created_by") else "") + ".",
        "",
        _table(["statistic", "value"], [[k.replace("_", " "), _fmt(v)] for k, v in c.items()]),
        "",
        "Preprocessing options (all recorded in the dataset's `manifest.json`):",
        "",
        _table(["option", "value"], [[f"`{k}`", f"`{json.dumps(v)}`"] for k, v in o.items() if k not in ("source", "meta")]),
    ]
    notes = [f"- **{label}:** {manifest[key]}" for key, label in
             (("id_scheme", "Ids"), ("order", "Order"), ("split", "Split"), ("candidates", "Candidates")) if manifest.get(key)]
    if notes:
        lines += [""] + notes
    inputs = manifest.get("inputs") or []
    if inputs:
        lines += ["", "Input files (sha256):", ""]
        lines += [f"- `{Path(i['path']).name}` ({_size(int(i.get('bytes', 0)))}): `{i.get('sha256')}`" for i in inputs]
    return "\n".join(lines)


def training_section(info: CheckpointInfo) -> str:
    log = info.training_log or {}
    lines = []
    args = log.get("args") or {}
    if info.kind == ALLMREC:
        cfg = info.config
        target = ("the chosen candidate's label" if cfg.get("answer_format") == "index" else "the next-item title")
        objective = f" (objective `{cfg['train_objective']}`)" if cfg.get("train_objective") else ""
        if _lora_rank(info):
            lines.append(
                f"Stage 2 of A-LLMRec with LoRA: the CF model and the LLM's base weights stay frozen; the projectors F_U "
                f"(user) and F_I (item) and rank-{_lora_rank(info)} LoRA adapters on the LLM are trained, with {target} "
                f"as the LM target{objective}. The paper (§4.2) trains the projectors alone on a frozen LLM."
            )
        else:
            lines.append(
                "Stage 2 of A-LLMRec: the LLM and the CF model stay frozen; only the projectors F_U (user) and F_I (item) "
                f"are trained, with {target} as the LM target{objective} (paper §4.2)."
            )
    else:
        c = info.config
        lines.append(
            f"LoRA (peft `{c.get('peft_type')}`) on `{', '.join(sorted(c.get('target_modules') or []))}` with r = {c.get('r')}, "
            f"alpha = {c.get('lora_alpha')}, dropout = {c.get('lora_dropout')}; the base LLM stays frozen."
        )
    if args:
        keep = ("epochs", "batch_size", "lr", "beta1", "beta2", "num_negatives", "max_steps", "max_train_users", "valid_users",
                "patience", "prompt_style", "item_embedding", "mixed_precision", "llm_dtype", "seed")
        rows = [[f"`{k}`", f"`{json.dumps(args[k])}`"] for k in keep if k in args]
        rows += [[f"`{k}`", f"`{json.dumps(v)}`"] for k, v in args.items()
                 if k not in keep and isinstance(v, (int, float, bool)) and k not in ("progress", "overwrite", "log_every")]
        lines += ["", _table(["hyper-parameter", "value"], rows)]
    facts = []
    for key, label in (("training_users", "training users"), ("trainable_parameters", "trainable parameters"),
                       ("steps", "optimisation steps"), ("samples_seen", "training samples seen")):
        if log.get(key) is not None:
            facts.append(f"{label}: {log[key]:,}" if isinstance(log[key], int) else f"{label}: {log[key]}")
    best = log.get("best")
    if isinstance(best, dict) and best.get("hit@1") is not None:
        facts.append(f"best validation Hit@1 {best['hit@1']:.4f} on {best.get('n_users')} users at step {best.get('step')} (the saved state)")
    if log.get("stopped_early"):
        facts.append("training stopped early (no validation improvement)")
    timings = log.get("timings") or {}
    if timings:
        facts.append("wall-clock seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    if facts:
        lines += [""] + [f"- {f}" for f in facts]
    return "\n".join(lines) if (args or facts or info.kind == TALLREC or log) else ""


def contents_table(info: CheckpointInfo, extra: Mapping[str, int | None] | None = None) -> str:
    meaning = {
        "config.json": "model configuration: base LLM id, CF config, stage-1 sizes, prompt and generation settings",
        "model.safetensors": ("projectors F_U/F_I, the LLM's LoRA adapters, the frozen CF model and the stage-1 item "
                              "tables (no base LLM weights)" if _lora_rank(info) else
                              "projectors F_U/F_I, the frozen CF model and the stage-1 item tables (no LLM weights)"),
        "item_catalogue.json": "item titles by id (index 0 = padding): needed to build prompts",
        "training_log.json": "losses, validations, arguments and timings of the training run",
        "adapter_config.json": "peft LoRA configuration, including the base model id",
        "adapter_model.safetensors": "the LoRA weights only",
        "configuration_allmrec.py": "remote code: the configuration class",
        "modeling_allmrec.py": "remote code: the model class (AutoModel with trust_remote_code)",
        "README.md": "this card",
        "allmrec_baseline.json": "allmrec settings of the baseline: prompt style, dataset, base LLM name, generation",
        "tokenizer.json": "the base LLM's tokenizer, saved with the adapter",
        "tokenizer_config.json": "tokenizer settings (padding side, special tokens)",
        "special_tokens_map.json": "tokenizer special tokens",
        "chat_template.jinja": "the tokenizer's chat template (unused by the recommendation prompts)",
        "generation_config.json": "generation defaults",
    }
    rows = []
    extra = dict(extra or {})
    for f in list(info.files) + list(extra):
        p = info.path / f
        size = _size(p.stat().st_size) if f in info.files else (_size(extra[f]) if extra.get(f) is not None else "–")
        what = meaning.get(f)
        if what is None and f.endswith(".py"):
            what = "remote code: a module the model code imports"
        if what is None and f.startswith("results/"):
            what = "an evaluation results file this card's numbers come from"
        rows.append([f"`{f}`", size, what or ""])
    return _table(["file", "size", "what it is"], rows)


def how_to_load_section(info: CheckpointInfo, repo_id: str) -> str:
    base = info.base_model or "<base LLM>"
    base_id = hub_id(base)
    if info.kind == TALLREC:
        recorded = info.config.get("base_model_name_or_path")
        base_ref = f'"{base_id}"' if base_id else f"<a folder with the {base} weights>"
        code = (
            "```python\n"
            "from peft import PeftModel\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"base = AutoModelForCausalLM.from_pretrained({base_ref})\n"
            f'model = PeftModel.from_pretrained(base, "{repo_id}", revision="<commit sha>")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision="<commit sha>")  # saved with the adapter\n'
            "```"
        )
        if hub_id(recorded) == recorded and recorded:
            code += (f'\n\nor in one call, since `adapter_config.json` names a Hub model: '
                     f'`AutoPeftModelForCausalLM.from_pretrained("{repo_id}", revision="<commit sha>")`.')
        else:
            code += (f"\n\n`adapter_config.json` records the local folder the adapter was trained on (`{recorded}`), so "
                     "load the base model explicitly as above.")
        return code + ("\n\nWith `allmrec` installed, `allmrec evaluate --model <local snapshot> --data <prepared dataset>` "
                       "reproduces the numbers above.")
    llm_line = (f'llm_name_or_path="{base_id}"' if base_id else f'llm=<the {base} weights>, tokenizer=<its tokenizer>')
    parts = []
    if info.has_remote_code:
        parts.append(
            "With only `transformers` installed (the repository carries its own code; pin the revision you reviewed):\n\n"
            "```python\n"
            "from transformers import AutoModel\n\n"
            f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True, revision="<commit sha>", {llm_line})\n'
            "model.recommend(history=[50, 172, 133], candidates=[1, 2, 3, 98])  # item ids (or titles) of item_catalogue.json\n"
            "```"
        )
    parts.append(
        "With `allmrec` installed:\n\n"
        "```python\n"
        "from allmrec.model import ALLMRecForRecommendation\n\n"
        f'model = ALLMRecForRecommendation.from_pretrained("{repo_id}", revision="<commit sha>", {llm_line})\n'
        "```\n\n"
        f"or `allmrec recommend --model {repo_id} ...` / `allmrec evaluate --model <local snapshot> --data <prepared dataset>`."
    )
    parts.append(
        "The frozen LLM is loaded separately (its weights are not in this repository); loading fails with a clear error if "
        "its hidden size, vocabulary or tokenizer differ from the ones recorded in `config.json`."
    )
    return "\n\n".join(parts)


def limitations_section(info: CheckpointInfo, manifest: Mapping[str, Any] | None, own_results: Sequence[Mapping[str, Any]]) -> str:
    base = info.base_model or "the base LLM"
    n_neg = int(((manifest or {}).get("options") or {}).get("num_candidates") or 20) - 1
    items = [
        f"Scores are Hit@k among a **small sampled candidate set** (1 target + {n_neg} negatives), the paper's protocol. "
        "Sampled metrics overstate absolute quality and can change model rankings compared with full-catalogue ranking "
        "(Krichene & Rendle, KDD 2020); compare models only on identical candidate sets, as the tables above do.",
        f"The recommendations inherit the biases of the interaction data (e.g. popularity bias: compare the warm and cold "
        f"rows) and of {base} (what its pre-training text says about these titles).",
    ]
    if info.kind == ALLMREC:
        items.append(
            "The collaborative signal covers only the users' interaction histories and items of the training catalogue; an "
            "item or user the CF model never saw gets an untrained representation (see the cold scenarios)."
        )
        items.append(
            "The model is only as good as its frozen parts: the CF model (shipped here) and the base LLM (loaded by id). "
            "Loading checks the LLM's hidden size, vocabulary and tokenizer, not its weights: another checkpoint of the "
            "same architecture loads silently and gives different, unvalidated results."
        )
    if info.kind == TALLREC:
        items.append(
            "TALLRec sees users and items only through item titles: it has no collaborative signal, so items with "
            "uninformative or near-duplicate titles are hard to tell apart (the gap A-LLMRec's CF embeddings address)."
        )
    if asset_name(info.base_model) in ASSET_NOTES:
        items.append(ASSET_NOTES[asset_name(info.base_model)])
    llm = str(base).lower()
    if any(s in llm for s in ("135m", "270m", "smollm", "tiny")):
        items.append(
            f"{base} is a very small LLM chosen so the pipeline runs on a CPU; the paper uses OPT-6.7B, so absolute numbers "
            "are not comparable with the paper's tables."
        )
    if manifest and (manifest.get("name") == "ml-100k" or "movielens" in str(manifest.get("name", "")).lower()):
        items.append(
            "MovieLens-100K is small (943 users, 1,682 movies) and dense; it is not one of the paper's Amazon datasets. "
            "The item catalogue in this repository holds the dataset's movie titles; check the GroupLens terms of use "
            "before redistributing derived data."
        )
    if any(r.get("user_subset") for r in own_results):
        items.append("Some results were computed on a seeded subset of the test users (stated next to each table).")
    return "\n".join(f"- {i}" for i in items)


# ---------------------------------------------------------------------------------------------- metadata
def eval_results(own: Sequence[tuple[str, Mapping[str, Any]]], manifest: Mapping[str, Any] | None):
    """``EvalResult`` objects for this model's results: one per metric × scenario × results file."""
    from huggingface_hub import EvalResult

    out = []
    for _, r in own:
        dataset = r.get("dataset") or "unknown"
        dataset_type = _dataset_ids(manifest, dataset)[0]
        mode = r.get("mode")
        n_cand = r.get("num_candidates") or ((manifest or {}).get("options") or {}).get("num_candidates") or 20
        for label, n_users, metrics in _scenario_rows(r):
            if not metrics or not n_users:
                continue
            scenario = None if label == "all users" else label.split(" ")[0]
            for key, value in metrics.items():
                if key not in METRICS or value is None:
                    continue
                metric_type, metric_name = METRICS[key]
                if mode and mode != "generate":
                    metric_name += f" ({mode} mode)"
                out.append(EvalResult(
                    task_type="text-generation",
                    task_name=f"Next-item recommendation among {n_cand} candidates (1 target + {int(n_cand) - 1} sampled negatives)",
                    dataset_type=dataset_type,
                    dataset_name=f"{DATASET_DISPLAY_NAMES.get(dataset, dataset)} ({r['split']}"
                                 + (f", {scenario} {'items' if scenario in ('warm', 'mid', 'cold') else 'users'}" if scenario else "")
                                 + ")",
                    dataset_split=r["split"],
                    dataset_config=scenario,
                    dataset_args={"num_candidates": int(n_cand), "candidate_fingerprint": r["candidate_fingerprint"],
                                  "n_users": int(n_users)},
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=round(float(value), 6),
                    metric_args={"k": int(key.split("@")[1].split("_")[0])} if "@" in key else None,
                ))
    return out


def _dataset_ids(manifest: Mapping[str, Any] | None, name: str | None) -> list[str]:
    hub = (manifest or {}).get("hub_dataset")
    if hub and hub.get("repo_id"):
        return [hub["repo_id"]]  # the exact prepared data on the Hub (the raw source is named in its own card)
    fmt = (manifest or {}).get("format")
    if fmt in DATASET_HUB_IDS:
        return [DATASET_HUB_IDS[fmt]]
    return [name] if name else []


def card_data(info: CheckpointInfo, repo_id: str, own, manifest, license: str | None):
    from huggingface_hub import ModelCardData

    base_id = hub_id(info.base_model)
    dataset_name = (manifest or {}).get("name") or info.settings.get("dataset_name") or (own[0][1].get("dataset") if own else None)
    tags = ["recommendation", "sequential-recommendation", "allmrec"]
    if info.kind == ALLMREC:
        tags += ["a-llmrec", "collaborative-filtering"]
        cf_type = (info.config.get("cf_config") or {}).get("model_type")
        if cf_type:
            tags.append(cf_type)
        if info.has_remote_code:
            tags.append("custom_code")
    else:
        tags += ["tallrec", "lora", "peft"]
        if base_id:
            tags.append(f"base_model:adapter:{base_id}")
    results = eval_results(own, manifest)
    data = ModelCardData(
        language="en",
        license=license,
        library_name="transformers" if info.kind == ALLMREC else "peft",
        base_model=base_id,
        datasets=_dataset_ids(manifest, dataset_name) or None,
        tags=tags,
        pipeline_tag="text-generation",
        metrics=sorted({r.metric_type for r in results}) or None,
        model_name=repo_id.split("/")[-1] if results else None,
        eval_results=results or None,
    )
    return data


def check_card_metadata(card) -> None:
    """Offline checks of the rendered card's metadata (the Hub's validate-yaml runs on push as well):
    it must parse back to the same metadata, and the model-index must convert back to eval results."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    reparsed = ModelCard(str(card))
    data = reparsed.data.to_dict()
    if data != card.data.to_dict():
        raise AllmrecError("the rendered model card's metadata does not survive a YAML round trip; report this as a bug")
    for key in ("library_name", "tags", "pipeline_tag"):
        if not data.get(key):
            raise AllmrecError(f"the rendered model card lacks '{key}' metadata; report this as a bug")
    if "model-index" in data:
        try:
            name, results = model_index_to_eval_results(data["model-index"])
        except (KeyError, TypeError, ValueError) as e:
            raise AllmrecError(f"the rendered model-index is malformed ({e}); report this as a bug") from e
        if not results or any(r.metric_value is None for r in results):
            raise AllmrecError("the rendered model-index has no or empty metric values; check the results files")


# ---------------------------------------------------------------------------------------------- render
def is_own_results(results: Mapping[str, Any], info: CheckpointInfo) -> bool:
    """Whether a results file describes this checkpoint's kind of model: the same model_type and, for A-LLMRec
    checkpoints, the same variant (an MLP-LLM results file is a baseline row on an A-LLMRec card, not its own).
    Results written before evaluate recorded ``baseline`` count as the checkpoint's own when the type matches."""
    own_type = ALLMREC if info.kind == ALLMREC else TALLREC
    if results.get("model_type") != own_type:
        return False
    return "baseline" not in results or results["baseline"] == info.config.get("baseline")


def _lora_rank(info: CheckpointInfo) -> int:
    """The rank of the LoRA adapters an A-LLMRec checkpoint trained on its LLM (0: the paper's frozen LLM)."""
    return int(info.config.get("llm_lora_rank") or 0) if info.kind == ALLMREC else 0


def render_card(
    info: CheckpointInfo,
    repo_id: str,
    results: Sequence[tuple[str, Mapping[str, Any]]] = (),
    manifest: Mapping[str, Any] | None = None,
    license: str | None = "apache-2.0",
    template: str | os.PathLike | None = None,
    extra_files: Mapping[str, int | None] | None = None,
):
    """Render ``MODEL_CARD.md`` for ``info`` → a :class:`huggingface_hub.ModelCard` (checked with
    :func:`check_card_metadata`). ``results`` are ``(file name, results dict)`` pairs; those whose
    ``model_type`` is this checkpoint's kind go into the model-index, all of them into the comparison;
    ``extra_files`` (repository path → size) are listed with the checkpoint's files."""
    from huggingface_hub import ModelCard

    template = Path(template) if template else TEMPLATE_PATH
    if not template.is_file():
        raise AllmrecError(f"model-card template {template} not found; pass --card-template or reinstall allmrec")
    # results written before evaluate recorded the answer format: the checkpoint's own rows take its config's
    results = [(n, {**r, "answer_format": info.config.get("answer_format", "title")}
                if is_own_results(r, info) and info.kind == ALLMREC and "answer_format" not in r else r)
               for n, r in results]
    own = [(n, r) for n, r in results if is_own_results(r, info)]
    extra_files = dict(extra_files or {})
    n_manifest = ((manifest or {}).get("counts") or {}).get("items")
    n_ckpt = info.settings.get("num_items")
    if n_manifest is not None and n_ckpt is not None and int(n_manifest) != int(n_ckpt):
        raise DataError(
            f"the prepared dataset {manifest.get('name')!r} has {n_manifest} items but the checkpoint was trained on "
            f"{n_ckpt}; pass the --data it was trained on"
        )
    if manifest is not None:
        check_results_match_manifest([r for _, r in results], manifest, [n for n, _ in results])
    data = card_data(info, repo_id, own, manifest, license)
    cfg = info.config
    settings = info.settings
    base = info.base_model or "not recorded"
    base_id = hub_id(info.base_model)
    base_line = f"[`{base_id}`](https://huggingface.co/{base_id})" if base_id else f"`{base}` (a local name, not a Hub id)"
    if info.kind == ALLMREC and cfg.get("llm_hidden_size"):
        base_line += f", hidden size {cfg['llm_hidden_size']}, " + (
            f"frozen, with rank-{_lora_rank(info)} LoRA adapters on `{', '.join(cfg.get('llm_lora_target_modules') or [])}` "
            "trained with the projectors (the adapters are in `model.safetensors`; the base weights are not in this "
            "repository)" if _lora_rank(info) else "frozen (weights not in this repository)")
    cf_line = None
    if info.kind == ALLMREC and cfg.get("cf_config"):
        cf = cfg["cf_config"]
        cf_line = (f"{MODEL_LABELS.get(cf.get('model_type'), cf.get('model_type'))} with d = {cfg.get('cf_hidden_size')}, "
                   f"frozen, shipped in `model.safetensors`; stage-1 item embeddings d' = {cfg.get('latent_dim')}")
    dataset_name = (manifest or {}).get("name") or settings.get("dataset_name")
    n_items = settings.get("num_items")
    if info.kind == ALLMREC:
        title = f"A-LLMRec on {DATASET_DISPLAY_NAMES.get(dataset_name, dataset_name or 'a custom dataset')} with {base_id or base}"
        llm_role = "an LLM (frozen, with small trained LoRA adapters)" if _lora_rank(info) else "a frozen LLM"
        summary = (
            "An **A-LLMRec** recommender (Kim et al., KDD 2024): a frozen collaborative-filtering model's user and item "
            f"embeddings are projected into {llm_role} as soft tokens, and the LLM names the next item among a set of "
            f"candidate titles. This repository holds the trained projectors, the CF model, the stage-1 item tables for "
            f"{n_items} items and the item catalogue — never the LLM, which is loaded from `{base_id or base}`."
        )
        model_description = (f"A-LLMRec stage 2 (`ALLMRecForRecommendation`, model_type `allmrec`); prompt style "
                             f"`{cfg.get('prompt_style')}`, item embeddings `{cfg.get('item_embedding')}`"
                             + (", one-label answers (candidates labelled; the answer is the label)"
                                if cfg.get("answer_format") == "index" else ""))
        paper_line = "[Large Language Models meet Collaborative Filtering (KDD 2024)](https://doi.org/10.1145/3637528.3671931)"
        citation = ALLMREC_BIBTEX
    else:
        title = f"TALLRec LoRA adapter on {DATASET_DISPLAY_NAMES.get(dataset_name, dataset_name or 'a custom dataset')} for {base_id or base}"
        summary = (
            "A **TALLRec**-style LoRA adapter (Bao et al., RecSys 2023), trained as the LLM-based baseline of an A-LLMRec "
            "reproduction: the LLM is fine-tuned with LoRA on the same next-item prompts and candidate sets, without any "
            "collaborative-filtering input. Only the adapter weights are stored here."
        )
        model_description = f"peft {cfg.get('peft_type')} adapter (`{cfg.get('task_type')}`)" + (
            f"; prompt style `{settings['prompt_style']}`" if settings.get("prompt_style") else "")
        paper_line = ("[TALLRec (RecSys 2023)](https://arxiv.org/abs/2305.00447), as re-run in "
                      "[A-LLMRec (KDD 2024)](https://doi.org/10.1145/3637528.3671931)")
        citation = TALLREC_BIBTEX + "\n\n" + ALLMREC_BIBTEX
    files = list(info.files) + ["README.md"] + list(extra_files)
    variables = dict(
        kind=info.kind,
        title=title,
        summary=summary,
        model_description=model_description,
        base_model_line=base_line,
        cf_line=cf_line,
        dataset_line=(_dataset_display(dataset_name) + (f", {n_items} items" if n_items else "")) if dataset_name else None,
        checkpoint_size=_size(info.total_bytes),
        file_count=len(files),
        allmrec_version=settings.get("allmrec_version") or (info.training_log or {}).get("allmrec_version"),
        paper_line=paper_line,
        license_line=license or "not specified",
        how_to_load=how_to_load_section(info, repo_id),
        contents_table=contents_table(info, {"README.md": None, **extra_files}),
        protocol=protocol_section(results, manifest),
        results_section=results_section(own),
        comparison_section=comparison_section(results, info),
        training_data=training_data_section(manifest),
        training_procedure=training_section(info),
        limitations=limitations_section(info, manifest, [r for _, r in own]),
        citation=citation,
    )
    card = ModelCard.from_template(data, template_path=str(template), **variables)
    card = ModelCard(card.content.rstrip("\n") + "\n")  # Jinja drops the template's final newline
    check_card_metadata(card)
    return card


__all__ = [
    "TEMPLATE_PATH", "HUB_IDS", "load_results", "load_manifest", "check_results_match_manifest", "hub_id",
    "render_card", "card_data", "eval_results", "check_card_metadata",
]
