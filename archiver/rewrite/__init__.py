"""Point articles at the preserved copies: ``text`` (the pure exact-token engine), ``targets``
(which reference points where) and ``files`` (the driver over files)."""

from archiver.rewrite.files import (
    ArticleResult,
    Options,
    Raw,
    decode_raw,
    out_paths,
    rewrite_paths,
    write_atomic,
)
from archiver.rewrite.targets import Missing, Targets, check_base_url, plan_targets, public_url
from archiver.rewrite.text import Change, Rewritten, rewrite_text

__all__ = [
    "ArticleResult", "Change", "Missing", "Options", "Raw", "Rewritten", "Targets",
    "check_base_url", "decode_raw", "out_paths", "plan_targets", "public_url", "rewrite_paths",
    "rewrite_text", "write_atomic",
]
