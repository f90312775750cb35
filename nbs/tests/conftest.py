"""Shared pytest fixtures: project paths, the read-only real data beside the checkout, the venv's tools."""
import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def shared_real() -> Path:
    "The read-only real-data folder: $SPINE_NB_SHARED, else ../shared/data/real beside the project."
    return Path(os.environ.get("SPINE_NB_SHARED") or ROOT.parent / "shared" / "data" / "real")


@pytest.fixture
def real_data() -> Path:
    p = shared_real()
    if not p.is_dir(): pytest.skip(f"real data folder {p} is absent (set SPINE_NB_SHARED to use it)")
    return p


@pytest.fixture
def root() -> Path: return ROOT
