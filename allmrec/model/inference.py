"""Evaluate an A-LLMRec stage-2 model on the stored candidate sets of a prepared split.

Every eligible user (every row of the split, or a seeded subset with ``max_users``) is scored on exactly
the 20 stored candidates (never re-drawn). Per user: the prompt lists the last ``history_len`` items of the
stored ``history`` (test: train + valid), x^u comes from the last ``cf_max_seq_len`` items of the same
history, the candidates are shown in stored order.

``mode="generate"`` (the paper's protocol)
    Greedy decoding (repetition penalty 1.5), first quoted title parsed, exact match after normalisation
    against the 20 candidate titles (:mod:`allmrec.model.matching`). Reports ``hit@1`` (exact),
    ``hit@1_lenient`` (the authors' substring rule) and ``valid_rate`` (outputs that name a candidate).
``mode="rank"``
    Each candidate scored by the log-likelihood of its answer (quoted title + EOS) given the prompt
    (``ALLMRecForRecommendation.score_candidates``: shared prompt once, KV cache repeated over the 20
    candidates) → hit@1/5/10, ndcg@10, mrr with the shared pessimistic tie rule.

Results follow :mod:`allmrec.evaluation.results`.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import AllmrecError, DataError
from ..evaluation.subsets import derangement, shuffle_history_rows, shuffle_user_rows, subset_rows  # the same users / permutation as every model
from ..utils.logging import get_logger
from .llm_loading import llm_is_placed, llm_load_kwargs, place_model, resolve_llm_dtype
from .matching import lenient_hit, match_candidate

logger = get_logger(__name__)

MODES = ("generate", "rank")
#: ``--ablate``: what is destroyed to check that the model reads the CF signal
ABLATIONS = ("shuffle-users", "shuffle-items", "shuffle-history")
#: users per LLM batch when the caller gives none
DEFAULT_LLM_BATCH = 4
#: a larger --batch-size (e.g. the CF evaluator's default 256) is capped to bound memory: rank mode holds
#: 20 copies of each prompt's KV cache (SmolLM2, ~450 tokens: ~0.4 GB per user; OPT-6.7B bf16: ~4.7 GB)
MAX_LLM_BATCH = {"rank": 4, "generate": 16}


# ---------------------------------------------------------------------------------------------- rows
def rows_fingerprint(rows: Mapping[str, Any]) -> str:
    """sha256 over (user_id, candidates) of exactly the rows evaluated."""
    h = hashlib.sha256()
    h.update(np.asarray(rows["user_id"], dtype=np.int64).tobytes())
    h.update(np.asarray(rows["candidates"], dtype=np.int64).tobytes())
    return h.hexdigest()


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def _llm_batch_size(batch_size: int | None, mode: str) -> int:
    if batch_size is None:
        return DEFAULT_LLM_BATCH
    if batch_size <= 0:
        raise AllmrecError(f"--batch-size must be positive, got {batch_size}")
    cap = MAX_LLM_BATCH[mode]
    if batch_size > cap:
        logger.info("%s mode: batch size %d capped to %d users per LLM batch (memory)", mode, batch_size, cap)
    return min(batch_size, cap)


# ---------------------------------------------------------------------------------------------- scoring
class _RowEncoder:
    """Builds prompts, CF inputs and candidate continuations for batches of evaluation rows."""

    def __init__(self, model, titles: Sequence[str]) -> None:
        self.model = model
        self.titles = titles
        self.builder = model.prompt_builder()
        self._continuations: dict[int, list[int]] = {}

    def prompts(self, rows, idx):
        return [self.builder.build(rows["history"][i], rows["candidates"][i], self.titles) for i in idx]

    def batch(self, rows, idx):
        from .modeling_allmrec import left_pad_histories
        from .processing_allmrec import encode_prompts

        enc = encode_prompts(self.model.tokenizer, self.prompts(rows, idx), padding_side="left")
        # cf_history / cf_user_id: what the CF model reads (another user's under --ablate shuffle-users)
        cf_hist = rows.get("cf_history", rows["history"])
        enc["cf_input_ids"] = left_pad_histories([cf_hist[i] for i in idx], self.model.config.cf_max_seq_len)
        if "user_id" in rows:
            import torch

            enc["user_ids"] = torch.as_tensor(np.asarray(rows.get("cf_user_id", rows["user_id"]))[idx], dtype=torch.long)
        return enc

    def continuations(self, candidates) -> list[list[int]]:
        """Token ids of every candidate's answer (its title, or its label for index answers), cached by text."""
        from .processing_allmrec import encode_target

        out = []
        for text in self.builder.candidate_answers([int(c) for c in candidates], self.titles):
            if text not in self._continuations:
                self._continuations[text] = encode_target(self.model.tokenizer, text)
            out.append(self._continuations[text])
        return out


def rank_scores(model, rows, titles, batch_size=None, item_embedding=None, progress=True, match_fusion: float = 0.0) -> np.ndarray:
    """``(N, C)`` log-likelihood scores of the stored candidates.

    ``match_fusion`` w > 0 (not in the paper): the score of candidate c is log softmax_c(LLM) + w · log softmax_c(match),
    where match is the model's own matching head, cos(O_u, O_c) / τ (:meth:`match_scores`), trained as the auxiliary
    loss of the listwise recipes. Both terms are distributions over the same candidates, so w weighs how far the
    LLM's choice is pulled towards the ranking its soft tokens already encode; w = 0 is the LLM alone."""
    from tqdm.auto import tqdm

    if match_fusion < 0:
        raise AllmrecError(f"--match-fusion must be >= 0, got {match_fusion}")
    if match_fusion > 0 and not float(getattr(model.config, "match_weight", 0.0) or 0.0) > 0:
        raise AllmrecError("--match-fusion needs a checkpoint trained with the matching loss (match_weight > 0: the "
                           "listwise and index-lora recipes); this one has none, its matching head is untrained")

    enc = _RowEncoder(model, titles)
    cands = np.asarray(rows["candidates"], dtype=np.int64)
    scores = np.zeros(cands.shape, dtype=np.float64)
    size = _llm_batch_size(batch_size, "rank")
    for idx in tqdm(list(_batches(len(cands), size)), desc="rank", unit="batch", disable=not progress, leave=False):
        b = enc.batch(rows, idx)
        conts = [enc.continuations(cands[i]) for i in idx]
        s = model.score_candidates(
            b["input_ids"], b["attention_mask"], conts, item_ids=b["item_ids"], cf_input_ids=b["cf_input_ids"],
            user_ids=b.get("user_ids"), item_embedding=item_embedding,
        )
        if match_fusion > 0:
            import torch

            with torch.no_grad():
                user = model.user_representation(b["cf_input_ids"], b.get("user_ids"))
                match = model.match_scores(user, torch.as_tensor(cands[idx]), item_embedding)
                s = (torch.log_softmax(s.double().cpu(), -1)
                     + match_fusion * torch.log_softmax(match.double().cpu(), -1))
        scores[idx] = s.double().cpu().numpy()
    return scores


def generate_outputs(model, rows, titles, batch_size=None, item_embedding=None, progress=True, max_new_tokens=None,
                     stop_at_answer=None) -> list[str]:
    """Decoded answers (special tokens skipped), one per row."""
    import warnings

    from tqdm.auto import tqdm

    enc = _RowEncoder(model, titles)
    outputs: list[str] = []
    size = _llm_batch_size(batch_size, "generate")
    n = len(rows["user_id"])
    for idx in tqdm(list(_batches(n, size)), desc="generate", unit="batch", disable=not progress, leave=False):
        b = enc.batch(rows, idx)
        with warnings.catch_warnings():
            # With inputs_embeds only, the penalty covers generated tokens only: the official code's behaviour.
            warnings.filterwarnings("ignore", message=".*repetition_penalty.*inputs_embeds.*")
            new = model.generate_answers(
                b["input_ids"], b["attention_mask"], item_ids=b["item_ids"], cf_input_ids=b["cf_input_ids"],
                user_ids=b.get("user_ids"), item_embedding=item_embedding, max_new_tokens=max_new_tokens,
                stop_at_answer=stop_at_answer,
            )
        # A-LLMRec's copy layout puts the opening quote in the prompt; text-only models have no such hook
        complete = getattr(model, "decoded_answer", None) or (lambda text: text)
        for i, t in zip(idx, model.tokenizer.batch_decode(new, skip_special_tokens=True)):
            # index answers name a label: resolved to that candidate's quoted title, so exact matching applies as is
            outputs.append(enc.builder.resolve_answer(complete(t), [titles[int(c)] for c in rows["candidates"][i]]))
    return outputs


def generation_metrics(outputs: Sequence[str], rows: Mapping[str, Any], titles: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-user ``hit@1`` (exact), ``hit@1_lenient`` (authors' rule) and ``valid_rate`` (names a candidate)."""
    cands = np.asarray(rows["candidates"], dtype=np.int64)
    targets = np.asarray(rows["target"], dtype=np.int64)
    hit = np.zeros(len(outputs))
    lenient = np.zeros(len(outputs))
    valid = np.zeros(len(outputs))
    for i, out in enumerate(outputs):
        cand_titles = [titles[c] for c in cands[i]]
        j = match_candidate(out, cand_titles)
        valid[i] = j is not None
        # a duplicated title among the candidates counts as the target if the target carries it
        hit[i] = j is not None and cand_titles[j] == titles[targets[i]]
        lenient[i] = lenient_hit(out, titles[targets[i]])
    return {"hit@1": hit, "hit@1_lenient": lenient, "valid_rate": valid}


# ---------------------------------------------------------------------------------------------- ablations
def apply_ablation(model, rows: Mapping[str, Any], ablate: str | None, seed: int = 0) -> dict[str, Any]:
    """Rows (and the model) with the CF signal destroyed as ``ablate`` says; the prompt text is never changed.

    ``shuffle-users``: user u's soft token O_u is computed from another evaluated user's history (a seeded
    derangement over all evaluated users, not only within a batch). ``shuffle-items``: every item's soft token O_i
    is the one of another item (a seeded derangement of ids 1..N) while its title stays; undone by
    ``model.item_permutation = None``. A model that uses the CF signal falls towards chance under either.
    """
    rows = dict(rows)
    if ablate is None:
        return rows
    if ablate not in ABLATIONS:
        raise AllmrecError(f"--ablate must be one of {', '.join(ABLATIONS)}, got {ablate!r}")
    if ablate == "shuffle-users":
        rows = shuffle_user_rows(rows, seed)
    elif ablate == "shuffle-history":
        rows = shuffle_history_rows(rows, seed)
    else:
        import torch

        n_items = int(model.config.num_items)
        model.item_permutation = torch.cat([torch.zeros(1, dtype=torch.long), torch.as_tensor(derangement(n_items, seed) + 1)])
    return rows


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate_model(
    model,
    dataset,
    split: str = "test",
    mode: str = "generate",
    item_embedding: str | None = None,
    batch_size: int | None = None,
    max_users: int | None = None,
    seed: int = 0,
    model_name: str | None = None,
    command: str | None = None,
    timings: dict[str, float] | None = None,
    progress: bool = True,
    n_examples: int = 5,
    stop_at_answer: bool | None = None,
    ablate: str | None = None,
    match_fusion: float = 0.0,
) -> dict[str, Any]:
    """Evaluate a loaded model on a :class:`~allmrec.data.dataset.PreparedDataset` split → results dict.

    ``match_fusion`` (rank mode) adds the model's matching head to the LLM's scores (:func:`rank_scores`).

    ``ablate`` (``shuffle-users`` / ``shuffle-items``, :func:`apply_ablation`) destroys the CF signal first."""
    from ..evaluation.cf_evaluator import check_rows
    from ..evaluation.metrics import per_user_rank_metrics, ranks_from_scores
    from ..evaluation.results import build_results

    if mode not in MODES:
        raise AllmrecError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    item_embedding = item_embedding or model.config.item_embedding
    timings = dict(timings or {})
    titles = dataset.titles
    if len(titles) != model.config.num_items + 1:
        raise DataError(
            f"{dataset.path} has {len(titles) - 1} items but the model was trained on {model.config.num_items}; "
            "evaluate on the dataset it was trained on"
        )
    all_rows = dataset.eval_rows(split)
    check_rows(all_rows, str(dataset.path), split)
    rows = apply_ablation(model, subset_rows(all_rows, max_users, seed), ablate, seed)
    n = len(rows["user_id"])
    logger.info("%s %s on %s/%s: %d users, item embedding %s", getattr(model.config, "model_type", "allmrec"), mode,
                dataset.name, split, n, item_embedding)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    extras: dict[str, Any] = {}
    # Under `accelerate launch`, each process scores whole batches of a contiguous slice of the users and the
    # slices are gathered back in order: the same numbers as one process (allmrec.training.distributed).
    from ..training.distributed import is_main_process, shard_and_gather

    progress = progress and is_main_process()
    align = _llm_batch_size(batch_size, mode)
    try:
        if match_fusion and mode != "rank":
            raise AllmrecError("--match-fusion applies to --mode rank only")
        if mode == "rank":
            scores = shard_and_gather(
                lambda part: rank_scores(model, part, titles, batch_size, item_embedding, progress, match_fusion),
                rows, align)
            per_user = per_user_rank_metrics(ranks_from_scores(scores, rows["target_index"]))
            extras["rank_normalization"] = model.config.rank_normalization
            if match_fusion:
                extras["match_fusion"] = match_fusion
        else:
            stop = model.config.generation_stop_at_answer if stop_at_answer is None else stop_at_answer
            outputs = shard_and_gather(
                lambda part: generate_outputs(model, part, titles, batch_size, item_embedding, progress, stop_at_answer=stop),
                rows, align)
            per_user = generation_metrics(outputs, rows, titles)
            extras["examples"] = [
                {"user_id": int(rows["user_id"][i]), "target": titles[int(rows["target"][i])], "output": outputs[i]}
                for i in range(min(n_examples, n))
            ]
            extras["generation"] = {
                "do_sample": False,
                "repetition_penalty": model.config.generation_repetition_penalty,
                "max_new_tokens": model.config.generation_max_new_tokens,
                "stop_at_answer": stop,
            }
    finally:
        model.train(was_training)
        model.item_permutation = None
    if ablate:
        extras["ablation"] = {"kind": ablate, "seed": seed}
    elapsed = time.perf_counter() - start
    timings[f"{mode}"] = round(elapsed, 3)
    return build_results(
        model=model_name or str(getattr(model, "name_or_path", "allmrec")),
        model_type="allmrec",
        dataset=dataset.name,
        dataset_path=str(dataset.path),
        split=split,
        per_user=per_user,
        scenarios=rows["scenario"],
        user_ids=rows["user_id"],
        candidate_fingerprint=dataset.candidate_fingerprint(split),
        command=command,
        timings=timings,
        mode=mode,
        item_embedding=item_embedding,
        prompt_style=model.config.prompt_style,
        # what a model card needs to label and describe this row without the checkpoint at hand
        answer_format=getattr(model.config, "answer_format", "title"),
        llm_lora_rank=int(getattr(model.config, "llm_lora_rank", 0) or 0),
        baseline=getattr(model.config, "baseline", None),
        llm=model.config.llm_name_or_path,
        num_candidates=int(np.asarray(rows["candidates"]).shape[1]),
        users_in_split=len(all_rows["user_id"]),
        user_subset={"max_users": max_users, "seed": seed} if max_users and max_users < len(all_rows["user_id"]) else None,
        evaluated_rows_fingerprint=rows_fingerprint(rows),
        users_per_second=round(n / elapsed, 4) if elapsed > 0 else None,
        **extras,
    )


def default_device() -> str:
    """``cuda:<local rank>`` under a multi-GPU launch, ``cuda`` on one GPU, else ``cpu``."""
    from ..training.accelerator import process_device

    return process_device()


def load_for_inference(path: str | Path, llm: str | None = None, device: str | None = None, llm_dtype: str = "auto",
                       quantization: str = "none", device_map: str | None = None, **overrides):
    """Load a stage-2 checkpoint (and its LLM) for inference on ``device`` (default: this process's GPU if any).

    ``llm_dtype`` / ``quantization`` (none, 8bit, 4bit) / ``device_map``: see :mod:`allmrec.model.llm_loading`.
    """
    from .modeling_allmrec import ALLMRecForRecommendation

    device = device or default_device()
    kwargs = llm_load_kwargs(llm_dtype, device, quantization, device_map)
    if llm:
        overrides["llm_name_or_path"] = llm
    model = ALLMRecForRecommendation.from_pretrained(str(path), llm_kwargs=kwargs, **overrides)
    place_model(model, device, model.llm if llm_is_placed(kwargs) else None)
    return model.eval()


def evaluate_checkpoint(args) -> dict[str, Any]:
    """``allmrec evaluate`` entry for A-LLMRec checkpoints.

    Reads ``args.model``, ``args.data``, ``args.split``, ``args.mode`` (None → generate, the paper's
    protocol), ``args.item_embedding`` (None → the checkpoint's), ``args.batch_size`` and optional
    ``args.max_users``, ``args.subset_seed``, ``args.stop_at_answer``, ``args.command``, ``args.llm``,
    ``args.device``, ``args.llm_dtype``.
    """
    from ..data.dataset import PreparedDataset

    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = PreparedDataset.load(args.data)
    timings["load_data"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    model = load_for_inference(
        args.model, llm=getattr(args, "llm", None), device=getattr(args, "device", None),
        llm_dtype=getattr(args, "llm_dtype", "auto") or "auto",
        quantization=getattr(args, "llm_quantization", "none") or "none",
        device_map=getattr(args, "llm_device_map", None),
    )
    if getattr(args, "cross_domain", False):  # a foreign catalogue: every item through the text path (Table 7)
        from .cross_domain import transfer_to_catalogue

        transfer_to_catalogue(model, dataset, getattr(args, "stage1", None))
    timings["load_model"] = round(time.perf_counter() - start, 3)
    results = evaluate_model(
        model,
        dataset,
        split=args.split,
        mode=getattr(args, "mode", None) or "generate",
        item_embedding=getattr(args, "item_embedding", None),
        batch_size=getattr(args, "batch_size", None),
        max_users=getattr(args, "max_users", None),
        seed=getattr(args, "subset_seed", 0),
        stop_at_answer=getattr(args, "stop_at_answer", None),
        ablate=getattr(args, "ablate", None),
        match_fusion=getattr(args, "match_fusion", None) or 0.0,
        model_name=str(args.model),
        command=getattr(args, "command", None),
        timings=timings,
    )
    if getattr(args, "cross_domain", False):
        results["cross_domain"] = dict(model.config.cross_domain)
    return results


# ---------------------------------------------------------------------------------------------- recommend
def run_recommend(args) -> int:
    """``allmrec recommend``: one user's history + candidates → ranked titles with scores (or a generated answer)."""
    import json

    model = load_for_inference(args.model, llm=args.llm, device=args.device)
    history = _split_items(args.history)
    candidates = _split_items(args.candidates)
    if not history or not candidates:
        raise AllmrecError("--history and --candidates each need at least one item (ids or titles, separated by '|')")
    try:
        if args.mode == "generate":  # ValueError: unknown title / id → one-line error
            result = recommend_generate(model, history, candidates, item_embedding=args.item_embedding)
            print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else result["answer"])
            return 0
        ranked = model.recommend(history, candidates, item_embedding=args.item_embedding)
    except ValueError as e:
        raise AllmrecError(str(e)) from e
    if args.json:
        print(json.dumps(ranked, ensure_ascii=False, indent=2))
    else:
        for pos, r in enumerate(ranked, 1):
            print(f"{pos:>2}. {r['score']:>10.3f}  [{r['item_id']}] {r['title']}")
    return 0


def recommend_generate(model, history, candidates, item_embedding=None) -> dict[str, Any]:
    """Generate one answer for one user; report which candidate (if any) it names."""
    if model.item_titles is None:
        raise AllmrecError("this checkpoint has no item catalogue (item_catalogue.json); generation needs titles")
    return model.recommend_generate(history, candidates, item_embedding=item_embedding)


def _split_items(text: str | None) -> list[int | str]:
    """``"1,2,3"`` → ids; ``"Toy Story (1995)|Heat (1995)"`` → titles (titles contain commas, so '|')."""
    if not text:
        return []
    parts = [p.strip() for p in (text.split("|") if "|" in text else text.split(","))]
    parts = [p for p in parts if p]
    if all(p.isdigit() for p in parts):
        return [int(p) for p in parts]
    if "|" not in text and len(parts) > 1:
        return [text.strip()]  # one title with commas in it
    return parts


__all__ = [
    "MODES",
    "ABLATIONS",
    "apply_ablation",
    "derangement",
    "subset_rows",
    "rows_fingerprint",
    "rank_scores",
    "generate_outputs",
    "generation_metrics",
    "evaluate_model",
    "evaluate_checkpoint",
    "load_for_inference",
    "resolve_llm_dtype",
    "run_recommend",
    "recommend_generate",
]
