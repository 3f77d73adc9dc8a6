"""LinkRequest: one frozen request for a linkage run, checked when it is made."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from voterolls.errors import UserError
from voterolls.link.run import LinkRequest
from voterolls.link.settings import DEFAULT_MIN_PROBABILITY, DEFAULT_THRESHOLD


def test_defaults_and_paths(tmp_path: Path) -> None:
    r = LinkRequest(str(tmp_path / "link"), model=str(tmp_path / "model.json"))
    assert r.out_dir == tmp_path / "link" and isinstance(r.out_dir, Path)
    assert r.model == tmp_path / "model.json" and isinstance(r.model, Path)
    assert (r.engine, r.source, r.threshold, r.min_probability) == (
        "duckdb", "registrations", DEFAULT_THRESHOLD, DEFAULT_MIN_PROBABILITY,
    )  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.threshold = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message", "field"),
    [
        ({"threshold": 1.0}, "threshold must be a probability strictly between 0 and 1, got 1.0", "threshold"),
        ({"threshold": 0.0}, "threshold must be a probability strictly between 0 and 1, got 0.0", "threshold"),
        ({"min_probability": -0.1}, "min_probability must be a probability", "min_probability"),
        ({"threshold": 0.5, "min_probability": 0.6}, "min_probability must not exceed the threshold", "min_probability"),
        ({"sealed_only": True, "engine": "spark"}, "--sealed-only runs on the duckdb engine only", "engine"),
        ({"sealed_only": True, "joint_names": True}, "--sealed-only has no joint full-name model", "joint_names"),
    ],
)
def test_a_bad_request_is_one_sentence_naming_the_field(tmp_path: Path, kwargs, message, field) -> None:
    with pytest.raises(UserError, match=message.replace("-", r"\-").replace(".", r"\.")) as err:
        LinkRequest(tmp_path / "link", **kwargs)
    assert err.value.field == field
    assert not (tmp_path / "link").exists()  # nothing is created for a request refused


def test_min_probability_zero_is_allowed(tmp_path: Path) -> None:
    assert LinkRequest(tmp_path, min_probability=0.0).min_probability == 0.0
