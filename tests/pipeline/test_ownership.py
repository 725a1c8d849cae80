"""Owners' key prefixes in the uploads bucket never take DataFrost's reserved prefix."""

from __future__ import annotations

from pipeline.events import is_reserved_key
from pipeline.ownership import owner_segment
from shared.auth.identity import Identity


def test_an_owner_named_like_the_reserved_prefix_gets_its_subject_instead() -> None:
    assert owner_segment(Identity("s-1", "ann", frozenset(), None)) == "ann"
    reserved = owner_segment(Identity("s-2", ".datafrost", frozenset(), None))
    assert reserved == "user-s-2" and not is_reserved_key(f"{reserved}/a.jpg")
    assert owner_segment(Identity("s-3", "..", frozenset(), None)) == "user-s-3"
