"""Property-based tests (hypothesis): random valid inputs never raise and the invariants hold.

Settings: ``PROFILE`` below (derandomized, so CI runs the same examples every time; ``max_examples`` per test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allmrec.data.candidates import assemble_candidates, sample_negatives
from allmrec.data.lines import read_lines
from allmrec.data.processing import kcore_mask
from allmrec.data.readers import read_amazon_reviews
from allmrec.evaluation.metrics import rank_metrics, ranks_from_scores
from allmrec.model.prompts import PromptBuilder

#: derandomized: the same examples on every run; no deadline (2-core CI machines are slow and shared)
PROFILE = settings(max_examples=60, derandomize=True, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# any text a stranger could type, surrogates excluded (not encodable as UTF-8)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@PROFILE
@given(st.lists(st.tuples(TEXT, TEXT, st.integers(0, 2**40), st.one_of(st.none(), st.floats(0, 5))), min_size=1,
                max_size=30), st.booleans(), st.booleans())
def test_review_reader_reads_back_every_valid_record(tmp_path_factory, records, bom, crlf):
    path = Path(tmp_path_factory.mktemp("rev")) / "Cat.json"
    end = "\r\n" if crlf else "\n"
    lines = [json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": r}) for u, i, t, r in records]
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (end.join(lines) + end).encode("utf-8"))
    table, bad = read_amazon_reviews(path, "amazon2018")
    assert bad == 0 and table.num_rows == len(records)
    assert table.column("user").to_pylist() == [u for u, _, _, _ in records]
    assert table.column("item").to_pylist() == [i for _, i, _, _ in records]
    assert table.column("timestamp").to_pylist() == [t for _, _, t, _ in records]


@PROFILE
@given(st.binary(max_size=300))
def test_line_reader_never_raises_anything_but_a_data_error_on_bytes(tmp_path_factory, data):
    from allmrec.errors import DataError

    path = Path(tmp_path_factory.mktemp("bytes")) / "x.json"
    path.write_bytes(data)
    try:
        lines = list(read_lines(path))
    except DataError as e:
        assert "\n" not in str(e) and path.name in str(e)
        return
    assert all("\n" not in text and text.strip() for _, text in lines)


@PROFILE
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=120), st.integers(1, 5))
def test_kcore_output_is_a_kcore_and_maximal(pairs, k):
    user = np.array([u for u, _ in pairs], dtype=np.int64)
    item = np.array([i for _, i in pairs], dtype=np.int64)
    mask, _ = kcore_mask(user, item, k)
    if k > 1 and mask.any():  # every kept user and item has >= k kept interactions
        assert (np.bincount(user[mask])[np.unique(user[mask])] >= k).all()
        assert (np.bincount(item[mask])[np.unique(item[mask])] >= k).all()
    again, _ = kcore_mask(user[mask], item[mask], k)  # idempotent: the core of the core is the core
    assert again.all()
    # maximal: the full input's k-core contains the k-core of any sub-sample (here: the first half)
    half = len(pairs) // 2
    sub, _ = kcore_mask(user[:half], item[:half], k)
    assert not (sub & ~mask[:half]).any()


@PROFILE
@given(st.integers(1, 40), st.integers(25, 60), st.integers(1, 19), st.integers(0, 2**32 - 1))
def test_every_candidate_set_has_its_target_once_and_no_history_item(n_users, n_items, n_neg, seed):
    rng = np.random.default_rng(seed)
    histories = [rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(1, 5)), replace=False) for _ in range(n_users)]
    users = np.arange(1, n_users + 1)
    targets = np.array([h[-1] for h in histories])
    keys = np.sort(np.concatenate([u * (n_items + 1) + h for u, h in zip(users, histories)]))
    groups = np.arange(n_items + 1)  # every title distinct
    negatives = sample_negatives(np.random.default_rng(seed), users, targets, keys, n_items, groups, n_neg)
    cands, tidx = assemble_candidates(np.random.default_rng(seed), targets, negatives)
    for row, t, ti, h in zip(cands, targets, tidx, histories):
        assert row[ti] == t and list(row).count(t) == 1 and len(set(row.tolist())) == len(row)
        assert not (set(row.tolist()) - {int(t)}) & set(h.tolist())
        assert all(1 <= c <= n_items for c in row)


@PROFILE
@given(st.lists(TEXT, min_size=3, max_size=12), st.sampled_from(["paper", "copy"]), st.sampled_from(["paper", "official", "fig6"]),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_prompt_builder_places_exactly_its_own_placeholders(titles, layout, style, soft, seed):
    catalogue = [""] + titles
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1, len(catalogue)))
    hist, cands = ids[: len(ids) // 2] if len(ids) > 2 else ids[:1], ids[len(ids) // 2:]
    builder = PromptBuilder(style=style, layout=layout, soft_tokens=soft)
    p = builder.build(hist.tolist(), cands.tolist(), catalogue, target_id=int(cands[0]))
    assert p.text == "".join(piece for piece, _ in p.segments)
    placeholders = [piece for piece, is_ph in p.segments if is_ph]
    n_hist = min(len(hist), builder.history_len)
    if soft:
        assert placeholders.count(builder.user_token) == 1
        assert placeholders.count(builder.history_token) == n_hist
        assert placeholders.count(builder.candidate_token) == len(cands)
        assert len(p.item_ids) == n_hist + len(cands)
    else:
        assert placeholders == []
    plain = "".join(piece for piece, is_ph in p.segments if not is_ph)
    assert all(catalogue[int(c)] in plain for c in cands)


@PROFILE
@given(st.integers(1, 30), st.integers(1, 25), st.integers(0, 2**32 - 1), st.booleans())
def test_metrics_lie_in_the_unit_interval_and_ties_are_pessimistic(n, c, seed, ties):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(n, c)).astype(float) if ties else rng.normal(size=(n, c))
    target = rng.integers(0, c, size=n)
    ranks = ranks_from_scores(scores, target)
    assert ((0 <= ranks) & (ranks < c)).all()
    for name, value in rank_metrics(ranks).items():
        assert 0.0 <= value <= 1.0, name
    # a target tied with another candidate is never ranked first
    best = scores.max(axis=1)
    tied = (scores == best[:, None]).sum(axis=1) > 1
    assert not ((ranks == 0) & tied & (scores[np.arange(n), target] == best)).any()
