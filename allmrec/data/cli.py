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
    p.set_defaults(func=_prepare)

    s = dsub.add_parser("stats", help="print users, items, interactions, density, warm/cold counts (paper Table 2)")
    s.add_argument("dir", help="a prepared dataset directory")
    s.add_argument("--json", action="store_true", help="print the manifest counts as JSON")
    s.set_defaults(func=_stats)


def _prepare(args) -> int:
    from .dataset import PreparedDataset
    from .prepare import options_from_args, prepare
    from .stats import stats_table

    prepare(options_from_args(args), args.out, overwrite=args.overwrite)
    print(stats_table(PreparedDataset.load(args.out)))
    return 0


def _stats(args) -> int:
    import json

    from .dataset import PreparedDataset
    from .stats import stats_table

    ds = PreparedDataset.load(args.dir)
    print(json.dumps(ds.manifest["counts"], indent=2) if args.json else stats_table(ds))
    return 0
