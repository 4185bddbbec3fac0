"""The Hypothesis profile chosen by HYPOTHESIS_PROFILE is really in force."""

from __future__ import annotations

import os

from hypothesis import settings


def test_the_profile_named_by_the_environment_is_loaded() -> None:
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    assert settings.default == settings.get_profile(name)
    # No example may fail for taking long on a busy machine.
    assert settings.default.deadline is None
