"""``allmrec demo``: the end-to-end run on the embedded default (MovieLens-100K, offline)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="end-to-end run on MovieLens-100K (offline): prepare data and show statistics")
    p.add_argument("--workdir", default="runs/demo", help="where the demo writes its data and models")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from .data.dataset import PreparedDataset
    from .data.prepare import PrepareOptions, prepare
    from .data.stats import stats_table

    data_dir = Path(args.workdir) / "data" / "ml-100k"
    prepare(PrepareOptions(source="ml-100k"), data_dir, overwrite=True)
    print(stats_table(PreparedDataset.load(data_dir)))
    return 0
