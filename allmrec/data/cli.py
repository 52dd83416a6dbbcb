"""``allmrec data prepare`` and ``allmrec data stats``."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields


def register(sub) -> None:
    data = sub.add_parser("data", help="prepare a dataset (Amazon 2014/2018/2023, RecBole, ml-100k) and show its statistics")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    from .prepare import PrepareOptions

    p = dsub.add_parser(
        "prepare",
        help="raw files → prepared dataset (filtering, k-core, leave-one-out split, fixed candidate sets)",
        description="Preprocess raw interactions into a reproducible dataset directory. Defaults follow the paper; "
        "every option is recorded in DIR/manifest.json. Example: allmrec data prepare --source ml-100k --out data/ml-100k",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    for f in fields(PrepareOptions):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata["help"]
        if f.type == "bool" or f.type is bool:
            p.add_argument(flag, action="store_true", help=help_)
        elif f.name == "few_shot":
            p.add_argument(flag, default="128,256", help=help_ + " (comma-separated)")
        else:
            typ = {"int | None": int, "float | None": float, "int": int, "float": float}.get(str(f.type), str)
            kw = {"required": True} if f.default is MISSING else {"default": f.default}
            p.add_argument(flag, type=typ, help=help_, **kw)
    # a hub: source is downloaded: the one prepare that talks to the Hub (main() keeps the others offline)
    p.set_defaults(func=_prepare, needs_hub=lambda a: str(a.source).startswith("hub:"))

    u = dsub.add_parser(
        "push",
        help="upload a prepared dataset to a Hub dataset repository (Parquet splits, manifest, catalogue, card)",
        description="Upload DIR (allmrec data prepare) to a dataset repository: the splits as Parquet through datasets' "
        "push_to_hub, manifest.json, items.jsonl, the content fingerprint and a dataset card. Get it back with "
        "`allmrec data prepare --source hub:REPO --out D` or PreparedDataset.load('hub:REPO'). Needs HF_TOKEN.",
    )
    u.add_argument("--data", required=True, help="prepared dataset directory")
    u.add_argument("--repo-id", required=True, help="dataset repository, OWNER/NAME")
    u.add_argument("--private", action="store_true", help="create the repository private (e.g. for data whose terms forbid redistribution)")
    u.add_argument("--commit-message", default=None, help="commit message (default: allmrec data push: NAME ...)")
    u.set_defaults(func=_push, needs_hub=True)

    s = dsub.add_parser("stats", help="print users, items, interactions, density, warm/cold counts (paper Table 2)")
    s.add_argument("dir", help="a prepared dataset directory")
    s.add_argument("--json", action="store_true", help="print the manifest counts as JSON")
    s.set_defaults(func=_stats)


def _prepare(args) -> int:
    from pathlib import Path

    from ..errors import AllmrecError
    from .dataset import PreparedDataset
    from .hub import is_hub_source, pull_dataset
    from .prepare import options_from_args, prepare
    from .stats import stats_table

    if is_hub_source(args.source):  # already prepared: download + fingerprint check, no preparation options apply
        if Path(args.out).exists() and not args.overwrite:
            raise AllmrecError(f"output directory {args.out} already exists; pass --overwrite to replace it")
        pull_dataset(args.source, out=args.out)
    else:
        prepare(options_from_args(args), args.out, overwrite=args.overwrite)
    print(stats_table(PreparedDataset.load(args.out)))
    return 0


def _push(args) -> int:
    import json

    from ..assets import hub_offline
    from ..errors import AllmrecError
    from .hub import push_dataset

    if hub_offline():
        raise AllmrecError("HF_HUB_OFFLINE is set: pushing needs the network (unset it, or use HF_ENDPOINT for a mirror)")
    print(json.dumps(push_dataset(args.data, args.repo_id, private=args.private, commit_message=args.commit_message), indent=2))
    return 0


def _stats(args) -> int:
    import json

    from .dataset import PreparedDataset
    from .stats import stats_table

    ds = PreparedDataset.load(args.dir)
    print(json.dumps(ds.manifest["counts"], indent=2) if args.json else stats_table(ds))
    return 0
