"""The stage-2 prompt builder and answer matching: pinned strings, per-domain wording, the authors' rules."""

from __future__ import annotations

import pytest

from allmrec.model.matching import lenient_hit, match_candidate, normalize_title, parse_answer
from allmrec.model.prompts import DEFAULT_CANDIDATE_TOKEN, DEFAULT_HISTORY_TOKEN, DEFAULT_USER_TOKEN, PromptBuilder

TITLES = ["", "Toy Story (1995)", "Heat (1995)", "Fargo (1996)"]

# (style, soft_tokens) -> (prompt text, target text). Pinned character for character.
PINNED = {
    ("paper", True): (
        '[UserRep] is a user representation. This user has watched "Toy Story (1995)"[HistoryEmb], '
        '"Heat (1995)"[HistoryEmb] in the previous. Recommend one next movie for this user to watch next from the '
        'following movie title set, "Fargo (1996)"[CandidateEmb], "Toy Story (1995)"[CandidateEmb]. '
        "The recommendation is",
        ' "Fargo (1996)"',
    ),
    ("paper", False): (
        'This user has watched "Toy Story (1995)", "Heat (1995)" in the previous. Recommend one next movie for this '
        'user to watch next from the following movie title set, "Fargo (1996)", "Toy Story (1995)". '
        "The recommendation is",
        ' "Fargo (1996)"',
    ),
    # the official code's string (models/a_llmrec_model.py), O_u written as [UserRep]: no space in
    # "representation.This", "," between titles, trailing space after "is", target without a leading space
    ("official", True): (
        '[UserRep] is a user representation.This user has watched "Toy Story (1995)"[HistoryEmb],'
        '"Heat (1995)"[HistoryEmb] in the previous. Recommend one next movie for this user to watch next from the '
        'following movie title set, "Fargo (1996)"[CandidateEmb],"Toy Story (1995)"[CandidateEmb]. '
        "The recommendation is ",
        '"Fargo (1996)"',
    ),
    ("official", False): (
        'This user has watched "Toy Story (1995)","Heat (1995)" in the previous. Recommend one next movie for this '
        'user to watch next from the following movie title set, "Fargo (1996)","Toy Story (1995)". '
        "The recommendation is ",
        '"Fargo (1996)"',
    ),
    # paper Figure 6 (LLM-Only / TALLRec)
    ("fig6", False): (
        'This user has watched "Toy Story (1995)", "Heat (1995)" in the past. Recommend a movie for this user to '
        'watch next from the following set of movie titles, "Fargo (1996)", "Toy Story (1995)". '
        "The recommendation is",
        ' "Fargo (1996)"',
    ),
    ("fig6", True): (
        '[UserRep] is a user representation. This user has watched "Toy Story (1995)"[HistoryEmb], '
        '"Heat (1995)"[HistoryEmb] in the past. Recommend a movie for this user to watch next from the following '
        'set of movie titles, "Fargo (1996)"[CandidateEmb], "Toy Story (1995)"[CandidateEmb]. The recommendation is',
        ' "Fargo (1996)"',
    ),
}


@pytest.mark.parametrize("style,soft", sorted(PINNED))
def test_prompt_strings_are_pinned(style, soft):
    p = PromptBuilder("movie", style, soft_tokens=soft).build([1, 2], [3, 1], TITLES, target_id=3)
    assert (p.text, p.target) == PINNED[(style, soft)]
    assert p.history_ids == (1, 2) and p.candidate_ids == (3, 1)
    # placeholders stand for history then candidates, in order of appearance
    assert p.item_ids == ((1, 2, 3, 1) if soft else ())


@pytest.mark.parametrize(
    "domain,style,expected",
    [
        ("game", "paper", 'This user has played "Toy Story (1995)" in the previous. Recommend one next game for this user '
                          'to play next from the following game title set, "Heat (1995)", "Fargo (1996)". The recommendation is'),
        ("item", "paper", 'This user has bought "Toy Story (1995)" in the previous. Recommend one next item for this user '
                          'to buy next from the following item title set, "Heat (1995)", "Fargo (1996)". The recommendation is'),
        ("game", "fig6", 'This user has played "Toy Story (1995)" in the past. Recommend a game for this user to play next '
                         'from the following set of game titles, "Heat (1995)", "Fargo (1996)". The recommendation is'),
        ("item", "fig6", 'This user has bought "Toy Story (1995)" in the past. Recommend an item for this user to buy next '
                         'from the following set of item titles, "Heat (1995)", "Fargo (1996)". The recommendation is'),
    ],
)
def test_domain_wording(domain, style, expected):
    assert PromptBuilder(domain, style, soft_tokens=False).build([1], [2, 3], TITLES).text == expected


def test_history_keeps_the_last_ten_items_and_placeholders_count():
    titles = [""] + [f"M{i}" for i in range(1, 31)]
    p = PromptBuilder().build(list(range(1, 16)), list(range(11, 31)), titles, target_id=30)
    assert p.history_ids == tuple(range(6, 16))
    assert '"M5"' not in p.text.split("in the previous")[0] and '"M6"[HistoryEmb]' in p.text
    assert p.text.count("[HistoryEmb]") == 10 and p.text.count("[CandidateEmb]") == 20
    assert p.text.startswith("[UserRep]") and p.text.count("[UserRep]") == 1
    assert p.item_ids == tuple(range(6, 16)) + tuple(range(11, 31))


def test_text_only_prompt_from_titles_matches_id_prompt():
    b = PromptBuilder("movie", "fig6", soft_tokens=False)
    assert b.build_from_titles(["Toy Story (1995)", "Heat (1995)"], ["Fargo (1996)", "Toy Story (1995)"]).text == \
        b.build([1, 2], [3, 1], TITLES).text
    with pytest.raises(ValueError):
        PromptBuilder().build_from_titles(["a"], ["b"])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"domain": "books"}, "domain"),
        ({"style": "fancy"}, "style"),
        ({"history_len": 0}, "history_len"),
        ({"user_token": "[X]", "history_token": "[X]"}, "distinct"),
    ],
)
def test_bad_builder_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PromptBuilder(**kwargs)


def test_target_must_be_a_candidate():
    with pytest.raises(ValueError, match="not among the candidates"):
        PromptBuilder().build([1], [2, 3], TITLES, target_id=1)


# ------------------------------------------------------------------------------------------- matching
@pytest.mark.parametrize(
    "output,expected",
    [
        (' "Heat (1995)"', "Heat (1995)"),
        ('"Heat (1995)" and then "Fargo (1996)"', "Heat (1995)"),
        (' "Heat (1995)', "Heat (1995)"),
        ("Heat (1995)\nmore text", "Heat (1995)"),
        ("", ""),
    ],
)
def test_parse_answer_takes_the_first_quoted_title(output, expected):
    assert parse_answer(output) == expected


def test_normalize_title():
    assert normalize_title('  "HEAT   (1995)". ') == "heat (1995)"
    assert normalize_title("Star Wars: Episode IV") == "star wars: episode iv"  # inner punctuation kept


def test_exact_match_against_candidates():
    cands = ["Toy Story (1995)", "Heat (1995)", "Heat"]
    assert match_candidate(' "heat (1995)"', cands) == 1
    assert match_candidate(' "Heat"', cands) == 2
    assert match_candidate(' "Heat (19"', cands) is None  # a prefix is not a match
    assert match_candidate(' "Casino (1995)"', cands) is None  # names no candidate
    assert match_candidate("", cands) is None


def test_lenient_rule_is_the_authors_substring_rule():
    # substring of the span between the first and last quote
    assert lenient_hit('"Heat (1995)" or "Fargo (1996)"', "Fargo (1996)")
    assert lenient_hit('"Heat (1995) Director\'s cut"', "Heat (1995)")
    # no quote: the whole text is searched
    assert lenient_hit("I recommend heat (1995)", "Heat (1995)")
    # one quote: the span is empty, only an empty title "hits"
    assert not lenient_hit('"Heat (1995)', "Heat (1995)")
    # 'LLM' is deleted from the output (also inside titles): the official eval.py quirk
    assert lenient_hit('"The LLM Movie"', "The  Movie")
    # exact matching is stricter than the lenient rule
    assert match_candidate('"Heat (1995) Director\'s cut"', ["Heat (1995)"]) is None


@pytest.mark.parametrize("layout", ["paper", "copy"])
def test_soft_token_sets_drop_the_user_or_the_item_tokens(layout):
    """Paper Table 9: "w/o user representation" keeps the item tokens only, "w/o joint embedding" the user token only;
    the words and titles stay the same."""
    titles = ["", "Alpha (1990)", "Beta (1991)", "Gamma (1992)"]
    both, user, items = (PromptBuilder(layout=layout, token_set=t).build([1], [2, 3], titles, target_id=3)
                         for t in ("both", "user", "items"))
    assert DEFAULT_USER_TOKEN in both.text and DEFAULT_USER_TOKEN in user.text and DEFAULT_USER_TOKEN not in items.text
    assert DEFAULT_CANDIDATE_TOKEN not in user.text and DEFAULT_HISTORY_TOKEN not in user.text
    assert items.text.count(DEFAULT_CANDIDATE_TOKEN) == 2 and items.text.count(DEFAULT_HISTORY_TOKEN) == 1
    assert user.item_ids == () and items.item_ids == both.item_ids == (1, 2, 3)
    assert (user.has_user_token, items.has_user_token) == (True, False)
    for p in (both, user, items):
        assert all(t in p.text for t in titles[1:]) and "Gamma (1992)" in p.target
    with pytest.raises(ValueError, match="soft-token set"):
        PromptBuilder(token_set="none")


def test_genre_prompt_asks_for_genres_with_the_history_only():
    titles = ["", "Alpha (1990)", "Beta (1991)"]
    p = PromptBuilder(layout="copy").build_genre([1, 2], titles)
    assert p.text.startswith(DEFAULT_USER_TOKEN) and p.text.count(DEFAULT_HISTORY_TOKEN) == 2
    assert p.candidate_ids == () and p.item_ids == (1, 2) and "3 movie genres" in p.text
    plain = PromptBuilder(soft_tokens=False).build_genre([1, 2], titles)
    assert DEFAULT_HISTORY_TOKEN not in plain.text and plain.item_ids == () and "Beta (1991)" in plain.text
