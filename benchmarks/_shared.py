"""What the stage-2 benchmarks (``stage2.py``, ``efficiency.py``, ``scaling.py``) share: their default inputs and
the resource readings each worker subprocess reports. Imported by path (the scripts put this folder on
``sys.path``), not part of the package."""

from __future__ import annotations

import json
import resource
from pathlib import Path


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def peak_memory() -> dict:
    """Peak RSS of this process (and peak CUDA memory on a GPU), in MiB."""
    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def prepare_inputs(args, tmp: Path) -> None:
    """Fill in --data / --cf / --stage1 defaults inside ``tmp``.

    ml-100k prepared from the bundled copy, an untrained SASRec and random stage-1 tables in (0, 1)^128 (the
    stage-1 encoder ends in a sigmoid): the cost of stage 2 does not depend on how well they were trained.
    """
    import torch

    if not args.data:
        from allmrec.data.prepare import PrepareOptions, prepare

        args.data = str(tmp / "ml100k")
        prepare(PrepareOptions(source="ml-100k"), args.data, progress=False)
    if args.stage1:
        return
    from safetensors.torch import save_file

    from allmrec.data.dataset import PreparedDataset

    ds = PreparedDataset.load(args.data)
    if not args.cf:
        from allmrec.cf import SASRecConfig, SASRecModel

        torch.manual_seed(args.seed)
        args.cf = str(tmp / "cf")
        SASRecModel(SASRecConfig(num_items=ds.num_items)).save_pretrained(args.cf)
    s1 = tmp / "stage1"
    s1.mkdir()
    (s1 / "config.json").write_text(json.dumps({"model_type": "allmrec_stage1", "cf_model_path": args.cf, "latent_dim": 128}))
    g = torch.Generator().manual_seed(args.seed)
    joint, text = torch.rand(ds.num_items + 1, 128, generator=g), torch.rand(ds.num_items + 1, 128, generator=g)
    joint[0] = text[0] = 0
    save_file({"joint": joint, "text": text}, str(s1 / "item_embeddings.safetensors"))
    args.stage1 = str(s1)
