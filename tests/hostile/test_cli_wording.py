"""Class 9 of issue 28: ``--k 100`` over 5 images reports what was ranked, never "top 100 of 5"."""

from convscope.cli.inspect_cmd import top_of


def test_top_of_says_what_was_ranked():
    assert top_of(9, 1000) == "top 9 of 1,000"
    assert top_of(5, 5) == "top 5 of 5"
    assert top_of(100, 5) == "all 5 (--k 100 asked)"
