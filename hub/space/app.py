"""The A-LLMRec demo (a Gradio app): pick watched titles, see the 20 candidates ranked by A-LLMRec and by its CF model.

Runs as a Hugging Face Space (this folder, published by ``allmrec push --space``) or locally with
``allmrec serve --model M [--port P]``. The checkpoint is ``--model`` / ``$ALLMREC_MODEL`` / ``space_config.json``
(a Hub id or a folder). It needs only torch, transformers and gradio: without allmrec the checkpoint's own remote
code loads it (``trust_remote_code=True``); with allmrec, offline assets resolve too.

The page: a multiselect of the catalogue for the history (type to search it), 20 candidates drawn from the
catalogue (seeded; editable; "New candidates" draws others), and two tables after "Rank": A-LLMRec's ranking with
log P(title | prompt) and the frozen CF model's (SASRec's) ranking of the same candidates with its scores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

DESCRIPTION = (
    "**A-LLMRec** (Kim et al., KDD 2024): a frozen LLM reads a collaborative-filtering model's user and item "
    "embeddings as soft tokens in its prompt and names the item you will watch next among the candidates."
)
NUM_CANDIDATES = 20


def load_model(model_id: str, revision: str | None = None):
    """The checkpoint through allmrec when installed (offline assets resolve), else its own remote code."""
    pin = {"revision": revision} if revision else {}
    try:
        from allmrec.model import ALLMRecForRecommendation
    except ImportError:
        from transformers import AutoModel

        return AutoModel.from_pretrained(model_id, trust_remote_code=True, **pin).eval()
    return ALLMRecForRecommendation.from_pretrained(model_id, **pin).eval()


def cf_ranking(model, history: list[int], candidates: list[int]) -> list[tuple[int, float]]:
    """The frozen CF model alone (SASRec in the paper) on the same candidates: ``[(item_id, score)]`` best first."""
    import torch

    maxlen = int(model.config.cf_max_seq_len)
    seq = history[-maxlen:]
    seq = torch.tensor([[0] * (maxlen - len(seq)) + seq], dtype=torch.long)
    with torch.no_grad():
        scores = model.cf_model.score(seq, torch.tensor([candidates], dtype=torch.long))[0].tolist()
    return sorted(zip(candidates, scores), key=lambda x: -x[1])


class Catalogue:
    """Titles ↔ ids of the checkpoint's catalogue (a repeated title keeps its first id)."""

    def __init__(self, titles: list[str]) -> None:
        self.titles = titles
        self.ids: dict[str, int] = {}
        for i, t in enumerate(titles[1:], 1):
            self.ids.setdefault(t, i)
        self.choices = list(self.ids)

    def to_ids(self, names) -> list[int]:
        return [self.ids[n] for n in (names or []) if n in self.ids]

    def draw(self, exclude, seed: int) -> list[str]:
        rng = random.Random(seed)
        pool = [t for t in self.choices if t not in set(exclude or [])]
        return rng.sample(pool, min(NUM_CANDIDATES, len(pool)))


def build_app(model, seed: int = 0):
    """The Gradio Blocks of the demo for a loaded A-LLMRec model."""
    import gradio as gr

    if not model.item_titles:
        raise ValueError("this checkpoint has no item catalogue (item_catalogue.json): the demo needs titles")
    catalogue = Catalogue(list(model.item_titles))
    draws = {"n": 0}

    def rank(history, candidates):
        hist, cands = catalogue.to_ids(history), catalogue.to_ids(candidates)
        if not hist:
            return [], [], "Pick at least one title you watched (type to search the catalogue)."
        cands = [c for c in cands if c not in set(hist)]
        if len(cands) < 2:
            return [], [], "Give at least two candidates that are not in the history."
        llm = model.recommend(hist, cands)
        cf = cf_ranking(model, hist, cands)
        llm_rows = [[i + 1, r["title"], round(r["score"], 3)] for i, r in enumerate(llm)]
        cf_rows = [[i + 1, catalogue.titles[c], round(s, 3)] for i, (c, s) in enumerate(cf)]
        top = llm[0]["title"]
        agree = "agrees" if cf[0][0] == llm[0]["item_id"] else f"prefers {catalogue.titles[cf[0][0]]}"
        return llm_rows, cf_rows, f"A-LLMRec's pick: **{top}** (the CF model alone {agree})."

    def new_candidates(history):
        draws["n"] += 1
        return gr.update(value=catalogue.draw(history, seed + draws["n"]))

    with gr.Blocks(title="A-LLMRec next-item recommendation") as demo:
        gr.Markdown("# A-LLMRec: next-item recommendation\n" + DESCRIPTION)
        history = gr.Dropdown(catalogue.choices, value=[], multiselect=True, elem_id="history",
                              label="What you watched, oldest first (type to search the catalogue)")
        candidates = gr.Dropdown(catalogue.choices, value=catalogue.draw([], seed), multiselect=True, elem_id="candidates",
                                 label=f"Candidates ({NUM_CANDIDATES} drawn from the catalogue; edit freely)")
        with gr.Row():
            redraw = gr.Button("New candidates", elem_id="redraw")
            go = gr.Button("Rank", variant="primary", elem_id="rank")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            llm_table = gr.Dataframe(headers=["rank", "title", "log P(title)"], label="A-LLMRec", elem_id="allmrec-ranking")
            cf_table = gr.Dataframe(headers=["rank", "title", "CF score"], label="CF model alone (SASRec)", elem_id="cf-ranking")
        go.click(rank, [history, candidates], [llm_table, cf_table, status])
        redraw.click(new_candidates, [history], [candidates])
    return demo


def _model_id(given: str | None) -> tuple[str, str | None]:
    if given:
        return given, None
    if os.environ.get("ALLMREC_MODEL"):
        return os.environ["ALLMREC_MODEL"], None
    config = Path(__file__).with_name("space_config.json")  # written by `allmrec push --space`: the pushed commit
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        return data["model"], data.get("revision")
    raise SystemExit("no model: pass --model, set ALLMREC_MODEL, or add space_config.json {\"model\": REPO}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="A-LLMRec demo (Gradio)")
    p.add_argument("--model", default=None, help="checkpoint: Hub id or folder (default: $ALLMREC_MODEL / space_config.json)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 on a Space)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidate draws (default: 0)")
    a = p.parse_args(argv)
    demo = build_app(load_model(*_model_id(a.model)), seed=a.seed)
    demo.launch(server_name=a.host, server_port=a.port, show_error=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
