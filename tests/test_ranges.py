import pytest

from render.ranges import IndexSelection, format_indices, parse_seeds, parse_selection


@pytest.mark.parametrize("text, seeds", [
    ("0-7,12", (0, 1, 2, 3, 4, 5, 6, 7, 12)),
    (7, (7,)),
    ([3, "5-6"], (3, 5, 6)),
    (" 1 , 2 ", (1, 2)),
    ("4294967295", (4294967295,)),
])
def test_seeds_parse_when_given_lists_and_inclusive_ranges(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("5-2", "bad range '5-2'"),
    ("a", "bad item 'a'"),
    ("1,,2", "expected a number"),
    ("", "expected a number"),
    ("-3", "bad item '-3'"),
    ("3-", "bad item '3-'"),
    ("4294967296", "out of range"),
    ("1,1", "seed 1 is listed twice"),
    (True, "expected a number"),
    (1.5, "expected a number"),
])
def test_seeds_are_refused_with_a_reason_when_malformed(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


@pytest.mark.parametrize("text, size, indices", [
    ("all", 4, (0, 1, 2, 3)),
    ("0-1", 18, (0, 1)),
    ("2-5", 18, (2, 3, 4, 5)),
    ("6-", 8, (6, 7)),
    ([5, "0-1"], 8, (0, 1, 5)),
    ("1,1", 3, (1,)),
])
def test_selection_resolves_against_the_model_size(text, size, indices):
    assert parse_selection(text).resolve(size) == indices


def test_selection_refuses_indices_beyond_the_model_size():
    with pytest.raises(ValueError, match="layer 18 is out of range: the model has 18"):
        parse_selection("16-18").resolve(18, "layer")
    with pytest.raises(ValueError, match="layer 9 is out of range"):
        parse_selection("9-").resolve(8, "layer")


def test_selection_text_round_trips():
    for text in ("all", "0-1", "2-5,7", "6-", "3"):
        assert str(parse_selection(text)) == text
        assert parse_selection(str(parse_selection(text))) == parse_selection(text)
    assert parse_selection(IndexSelection(None)) == IndexSelection(None)


def test_format_indices_compacts_runs():
    assert format_indices([]) == ""
    assert format_indices([3, 1, 2]) == "1-3"
