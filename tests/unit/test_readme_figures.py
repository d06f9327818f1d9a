"""The README's headline figures are the ones on the generated benchmark page (benchmarks/readme.py)."""

import pytest

from benchmarks import readme

PAGE = """| figure | unit | min | median | max | spread | reference | ref. median |
| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |
""" + "\n".join(f"| {name} | ms | 1 | {i + 2} | 9 | 1% | ref | 0.5 |" for i, (name, _) in enumerate(readme.HEADLINES))


def test_the_readme_block_is_the_pages_figures():
    assert readme.update(readme.README.read_text(), readme.PAGE.read_text()) == readme.README.read_text()


def test_the_block_takes_each_figures_median_range_and_reference():
    lines = readme.block(PAGE).splitlines()
    assert lines[0] == readme.BEGIN and lines[-1] == readme.END
    assert lines[3] == f"| {readme.HEADLINES[0][1]} | 2 ms | 1 - 9 | ref: 0.5 |"
    assert len(lines) == 4 + len(readme.HEADLINES)


def test_a_figure_missing_from_the_page_is_an_error():
    with pytest.raises(KeyError, match="has no figure named"):
        readme.block(PAGE.replace(readme.HEADLINES[2][0], "renamed"))


def test_update_replaces_only_the_text_between_the_markers():
    text = f"intro\n{readme.BEGIN}\nold\n{readme.END}\noutro\n"
    assert readme.update(text, PAGE) == f"intro\n{readme.block(PAGE)}\noutro\n"
