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


@pytest.fixture(autouse=True)
def _locale_unchanged(request):
    "Fail a test that changes the process locale (text I/O would silently switch to ASCII after it)."
    import locale
    before = locale.setlocale(locale.LC_CTYPE)
    yield
    after = locale.setlocale(locale.LC_CTYPE)
    if after != before:
        locale.setlocale(locale.LC_CTYPE, before)
        pytest.fail(f"{request.node.nodeid} changed LC_CTYPE from {before!r} to {after!r}")
