"""``allmrec data stats``: the rows of the paper's Table 2 for a prepared dataset."""

from __future__ import annotations

from .dataset import PreparedDataset

ROWS = [
    ("users", "users"),
    ("items", "items"),
    ("interactions", "interactions"),
    ("avg. sequence length", "avg_sequence_length"),
    ("density", "density"),
    ("evaluation users (valid+test)", "eval_users"),
    ("test users, warm target", "test_users_warm"),
    ("test users, mid target", "test_users_mid"),
    ("test users, cold target", "test_users_cold"),
    ("cold users (held out)", "cold_users"),
    ("items warm / cold", None),
]


def stats_table(ds: PreparedDataset) -> str:
    c = ds.manifest["counts"]
    o = ds.manifest["options"]
    lines = [f"dataset {ds.name}  ({ds.manifest.get('format')}; {o['kcore']}-core {o['kcore_mode']}, seed {o['seed']})"]
    width = max(len(label) for label, _ in ROWS)
    for label, key in ROWS:
        val = f"{c['items_warm']} / {c['items_cold']}" if key is None else c[key]
        if isinstance(val, float):
            val = f"{val:.4f}" if key == "avg_sequence_length" else f"{val:.6f}"
        lines.append(f"  {label:<{width}}  {val}")
    return "\n".join(lines)


__all__ = ["stats_table"]
