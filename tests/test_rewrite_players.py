"""``rewrite --video-tags`` on text: which players are found, what replaces them, the way
back."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.rewrite.players import Swap, Video, find_players, restore, swap_players

PAGE = "https://v.qq.com/x/page/k3318ooj0ej.html"
IFRAME = ('<iframe src="//v.qq.com/iframe/player.html?vid=https://v.qq.com/x/page/k3318ooj0ej'
          '.html&auto=0" allowfullscreen frameborder="0" style="max-width: 100%;"></iframe>')
WRAPPED = (f'<div style="background-color:#ececec" id="{PAGE}" class="iframe_video">{IFRAME}'
           "</div>")
VIDEO = Video("https://cdn.test/a/media/ab/v.mp4", "https://cdn.test/a/media/cd/t.jpg")
TAG = ('<video controls preload="none" src="https://cdn.test/a/media/ab/v.mp4" '
       'poster="https://cdn.test/a/media/cd/t.jpg"></video>')


def test_the_wrapped_player_is_replaced_whole_and_the_rest_kept() -> None:
    text = f"<p>a</p>\r\n<p></p>{WRAPPED}<p>来源</p>\r\n"
    out, swaps = swap_players(text, {PAGE: VIDEO})
    assert out.text == f"<p>a</p>\r\n<p></p>{TAG}<p>来源</p>\r\n"
    (change,) = out.changes
    assert (change.line, change.column, change.where) == (2, 8, "div.iframe_video")
    assert swaps == (Swap(PAGE, WRAPPED, TAG),)
    assert restore(out.text, swaps).text == text
    again, more = swap_players(out.text, {PAGE: VIDEO})
    assert again.text == out.text and not again.changes and more == ()


@pytest.mark.parametrize(("text", "span"), [
    (f"x {IFRAME} y", IFRAME),  # no wrapper: the iframe alone
    (f'<div class="other">{IFRAME}</div>', IFRAME),  # a div that is not the player's wrapper
    (f'<div class="iframe_video">{IFRAME}<p>caption</p></div>', IFRAME),  # more than the player
    (f'<div class="a iframe_video">\n  {IFRAME}\n</div>',
     f'<div class="a iframe_video">\n  {IFRAME}\n</div>'),
    ("<IFRAME SRC='https://v.qq.com/txp/iframe/player.html?vid=k3318ooj0ej'></IFRAME>",
     "<IFRAME SRC='https://v.qq.com/txp/iframe/player.html?vid=k3318ooj0ej'></IFRAME>"),
])
def test_what_counts_as_the_player(text: str, span: str) -> None:
    out, _ = swap_players(text, {PAGE: Video("/m.mp4")})
    assert out.text == text.replace(span, '<video controls preload="none" src="/m.mp4"></video>')


def test_hexos_iframe_tag_is_a_player_as_the_scanner_reads_it() -> None:
    hexo = "{% iframe https://v.qq.com/txp/iframe/player.html?vid=k3318ooj0ej 640 360 %}"
    fenced = f"```\n{hexo}\n```\n"
    text = f"# t\n\n{hexo}\n\n{fenced}{{% iframe https://www.youtube.com/embed/x %}}\n"
    out, swaps = swap_players(text, {PAGE: VIDEO})
    assert out.text == text.replace(hexo, TAG, 1)  # the fenced one and YouTube's stay
    (change,) = out.changes
    assert (change.line, change.column, change.where) == (3, 1, "hexo:iframe")
    assert swaps == (Swap(PAGE, hexo, TAG),)
    assert restore(out.text, swaps).text == text
    # An HTML player and a Hexo one in one article: both, in order.
    both = f"{IFRAME}\n{hexo}"
    assert [p.where for p in find_players(both)] == ["iframe[src]", "hexo:iframe"]


def test_other_players_code_blocks_and_unarchived_videos_stay() -> None:
    youtube = '<iframe src="https://www.youtube.com/embed/x"></iframe>'
    fenced = f"```html\n{IFRAME}\n```\n"
    other = IFRAME.replace("k3318ooj0ej", "other12345")
    text = f"{youtube}\n{fenced}{other}\n"
    out, swaps = swap_players(text, {PAGE: VIDEO})
    assert out.text == text and swaps == ()
    assert [p.origin for p in find_players(text)] == ["https://v.qq.com/x/page/other12345.html"]


def test_hostile_markup_is_no_crash_and_no_swap() -> None:
    for text in ("<iframe src=", "<div class=iframe_video><iframe " * 500,
                 '<iframe src="javascript:alert(1)"></iframe>', "<iframe>" * 2000):
        out, swaps = swap_players(text, {PAGE: VIDEO})
        assert out.text == text and swaps == ()


def test_restore_leaves_text_without_the_replacement_alone() -> None:
    out = restore("nothing here", [Swap(PAGE, WRAPPED, TAG)])
    assert out.text == "nothing here" and out.changes == ()


def test_video_tags_and_undo_exclude_each_other(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from archiver.cli.app import load_commands

    (tmp_path / "a.md").write_text(WRAPPED, encoding="utf-8")
    result = CliRunner().invoke(load_commands(), [
        "rewrite", str(tmp_path / "a.md"), "--dry-run", "--video-tags", "--undo-video-tags",
        "--store", str(tmp_path / "archive")])
    assert result.exit_code == 2 and "exclude each other" in result.output
