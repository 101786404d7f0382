"""The scanner's output, byte for byte, against the committed golden files (tests/golden).

A deliberate change of what the scanner finds is recorded with ``python -m tests.support.golden``
and the diff of tests/golden reviewed; an accidental one fails here with the first cases that
differ. The real corpus is compared by digests (its posts are not in the repository).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import golden


def _first_differences(expected: list[dict[str, object]], actual: list[dict[str, object]],
                       limit: int = 3) -> list[str]:
    out = []
    for old, new in zip(expected, actual, strict=False):
        if old != new:
            out.append(f"{old.get('case') or old.get('post')}:\n  golden: {json.dumps(old)}\n"
                       f"  now:    {json.dumps(new)}")
            if len(out) == limit:
                break
    return out


def test_cases_match_golden() -> None:
    expected = golden.load(golden.CASES_FILE)
    actual = [json.loads(golden.case_line(case)) for case in golden.cases()]
    assert [e["case"] for e in expected] == [a["case"] for a in actual], \
        "the golden cases changed: python -m tests.support.golden"
    changed_inputs = [a["case"] for e, a in zip(expected, actual, strict=True)
                      if e["input_sha256"] != a["input_sha256"]]
    assert not changed_inputs, f"inputs changed (regenerate the golden files): {changed_inputs}"
    differences = _first_differences(expected, actual)
    assert not differences, "scan output changed:\n" + "\n".join(differences)


def test_golden_cases_cover_the_hard_parts() -> None:
    """The golden set keeps exercising what a faster scanner could get wrong."""
    lines = golden.load(golden.CASES_FILE)
    scans = [line["scan"] for line in lines]
    refs = [r for s in scans for r in s["references"]]
    reasons = {k["reason"] for s in scans for k in s["skipped"]}
    assert {"relative", "data-uri", "javascript", "unsupported-scheme", "unsupported-video",
            "archived-copy"} <= reasons
    assert {r["kind"] for r in refs} == {"image", "gif", "video"}
    assert any(r["proxy"] for r in refs) and any(r["alternates"] for r in refs)
    assert any(r["origin"].startswith("https://v.qq.com/") for r in refs)
    assert any(s["warnings"] for s in scans) and len(lines) > 500


@pytest.mark.corpus
def test_real_corpus_matches_golden(corpus_dir: Path) -> None:
    expected = {line["post"]: line for line in golden.load(golden.CORPUS_FILE)}
    posts = golden.corpus_posts(corpus_dir)
    assert sorted(expected) == [p.relative_to(corpus_dir).as_posix() for p in posts]
    for path in posts:
        line = json.loads(golden.corpus_line(path, corpus_dir))
        old = expected[line["post"]]
        assert old["input_sha256"] == line["input_sha256"], f"{line['post']} changed on disk"
        assert old["scan_sha256"] == line["scan_sha256"], (
            f"scan output of {line['post']} changed; now:\n"
            + golden.corpus_scan(path, corpus_dir))
