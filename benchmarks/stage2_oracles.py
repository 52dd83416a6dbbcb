"""How well can the frozen LLM read a user token at all? Rank-mode validation Hit@1 with *oracle* user tokens.

A stage-2 model only trains F_U / F_I; the frozen LLM must turn O_u into the choice of one of the 20 candidate titles.
This benchmark replaces O_u by vectors built from the (known) target item, to measure the ceiling of each way the
LLM could read it, on the same seeded validation users:

``trained``          O_u = F_U(x^u) of the checkpoint (what the model really does);
``induction``        O_u = O_target, the target's own candidate soft token F_I(e_target): the copy layout's pattern
                     ``"[CandidateEmb] T" ... "[UserRep]`` → ``T`` with an *identical* vector (induction / copy heads);
``induction-embnorm`` the same with every soft token rescaled to the LLM's mean token-embedding norm;
``direct-R``         O_u = R · normalize(E[first answer token of the target] / γ) (γ = the final norm's weight): the
                     user token's own position, read by the output head through the residual stream ("logit lens");
                     a large norm R keeps the 30 layers from overwriting it.

A row ``KIND*S`` multiplies every soft token (O_u and each O_i) by S: does a larger norm let the copy heads match?

Prints a Markdown table (and writes ``--out`` JSON). Example (ml-100k, SmolLM2, ~85 s per row on 2 cores)::

    python benchmarks/stage2_oracles.py --model runs/s2 --data runs/data/ml-100k --users 40 \\
        --oracles trained,induction,induction-embnorm,direct-45,direct-150,direct-500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _oracle_hook(model, rows, kind: str):
    """A replacement for ``model.project_users`` that returns the oracle vector of the rows, in evaluation order."""
    import torch

    from allmrec.model.processing_allmrec import encode_target

    targets = [int(t) for t in np.asarray(rows["target"])]
    position = {"next": 0}
    trained = model.project_users
    if kind.startswith("direct-"):
        radius = float(kind.split("-", 1)[1])
        table = model.llm.get_input_embeddings().weight.detach()
        gamma = model.llm.get_decoder().norm.weight.detach()
        builder = model.prompt_builder()
        first = {t: encode_target(model.tokenizer, builder.target_text(model.item_titles[t]))[0] for t in set(targets)}

    def hook(user_embeds):
        batch = targets[position["next"]:position["next"] + user_embeds.shape[0]]
        position["next"] += user_embeds.shape[0]
        if kind == "trained":
            return trained(user_embeds)
        if kind.startswith("induction"):
            return model.project_items(torch.as_tensor(batch))
        vectors = torch.stack([table[first[t]] / gamma for t in batch])
        return radius * torch.nn.functional.normalize(vectors, dim=-1)

    return hook


def _scaled(model, factor: float):
    """``_scale_soft_tokens`` followed by a constant factor: the soft tokens' direction kept, their norm multiplied."""
    base = type(model)._scale_soft_tokens

    def scale(vectors):
        return base(model, vectors) * factor

    return scale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="stage-2 checkpoint directory")
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--users", type=int, default=40, help="seeded validation users (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the user subset (default: 0, as stage-2 validation)")
    p.add_argument("--oracles", default="trained,induction,induction-embnorm,direct-45,direct-150,direct-500",
                   help="comma-separated rows (see the module docstring)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--out", default=None, help="write the table as JSON here")
    a = p.parse_args(argv)

    import torch

    from allmrec.data.dataset import PreparedDataset
    from allmrec.evaluation.subsets import subset_rows
    from allmrec.model.modeling_allmrec import ALLMRecForRecommendation
    from allmrec.model.training import validation_hit1

    torch.set_num_threads(a.threads)
    dataset = PreparedDataset.load(a.data)
    model = ALLMRecForRecommendation.from_pretrained(a.model)
    model.eval()
    rows = subset_rows(dataset.eval_rows("valid"), a.users, a.seed)  # the rows validation_hit1 scores, in order
    results = []
    norm = model.config.soft_token_norm
    for spec in [k.strip() for k in a.oracles.split(",") if k.strip()]:
        kind, _, scale = spec.partition("*")
        model.config.soft_token_norm = "embedding" if kind == "induction-embnorm" else norm
        if scale:  # every soft token (O_u and all O_i) multiplied by the same factor
            model._scale_soft_tokens = _scaled(model, float(scale))
        model.project_users = _oracle_hook(model, rows, kind)
        t0 = time.perf_counter()
        hit1, n = validation_hit1(model, dataset, a.users, a.seed, progress=False)
        results.append({"oracle": spec, "hit@1": hit1, "users": n, "seconds": round(time.perf_counter() - t0, 1)})
        del model.project_users  # back to the class method
        if scale:
            del model._scale_soft_tokens
        print(f"{spec}: Hit@1 {hit1:.3f} on {n} users ({results[-1]['seconds']} s)", flush=True)
    model.config.soft_token_norm = norm
    print("\n| user token | validation Hit@1 | users |\n|---|---|---|")
    for r in results:
        print(f"| {r['oracle']} | {r['hit@1']:.3f} | {r['users']} |")
    if a.out:
        Path(a.out).write_text(json.dumps({"model": a.model, "data": a.data, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
