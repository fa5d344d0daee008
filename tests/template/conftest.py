"""Fixtures of the template checks: the template, loaded once per module."""

from __future__ import annotations

from typing import Any

import pytest
from stack_template import load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template) -> dict[str, Any]:
    return template["Resources"]
