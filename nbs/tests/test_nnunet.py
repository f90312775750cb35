"""spine-nb export-nnunet checked by nnU-Net v2's own dataset-integrity check (skipped when nnunetv2 is not installed)."""
import json, os, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
from spine_nb.data.phantom import generate_dataset
from spine_nb.data.io import kfold_splits

VERIFY = "import sys; from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity as v; v(sys.argv[1], 1)"


def verify(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k: str(folder.parent) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    return subprocess.run([sys.executable, "-c", VERIFY, str(folder)], capture_output=True, text=True, encoding="utf-8", env=env, timeout=600)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    "Seven CT phantoms (drawn orientations, spacings and oblique angles) of which one is a test case."
    return generate_dataset(tmp_path_factory.mktemp("nn") / "data", 7, seed=11, fov=("L1", "L4"), test_fraction=0.15, max_voxels=4e5, progress=False)


@pytest.mark.parametrize("target", ["vertebrae", "semantic"])
def test_export_passes_nnunet_integrity_check(phantoms, tmp_path, target):
    pytest.importorskip("nnunetv2", reason="nnunetv2 is not installed (pip install nnunetv2); its dataset-integrity check cannot run")
    out = subprocess.run([sys.executable, "-m", "spine_nb.export_nnunet", "--csv", str(phantoms), "--out", str(tmp_path), "--id", "42",
                          "--folds", "3", "--target", target], capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "Dataset042_SpineNB"
    r = verify(folder)
    assert r.returncode == 0 and "verify_dataset_integrity Done" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    df = pd.read_csv(phantoms)
    want = [{"train": sorted(t["name"]), "val": sorted(v["name"])} for t, v in kfold_splits(df, 3, 0)]
    assert json.loads((folder / "splits_final.json").read_text()) == want


def test_nnunet_check_catches_a_broken_export(phantoms, tmp_path):
    "The integrity check is live: a label removed after the export makes it fail."
    pytest.importorskip("nnunetv2", reason="nnunetv2 is not installed (pip install nnunetv2); its dataset-integrity check cannot run")
    from spine_nb.data.nnunet import export_nnunet
    folder = export_nnunet(phantoms, tmp_path, dataset_id=43, num_folds=3, progress=False)["folder"]
    next((folder / "labelsTr").glob("*.nii.gz")).unlink()
    assert verify(folder).returncode != 0


def test_test_only_export_round_trip(phantoms, tmp_path):
    "Held-out cases exported for nnUNetv2_predict come back through FolderPredictor: maps named as nnU-Net writes them score perfectly."
    import shutil
    from spine_nb.evaluation.compare import score_method
    from spine_nb.inference.external import FolderPredictor
    out = subprocess.run([sys.executable, "-m", "spine_nb.export_nnunet", "--csv", str(phantoms), "--out", str(tmp_path / "test"), "--test_only", "-q"],
                         capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    images = sorted(p.name for p in (tmp_path / "test/imagesTs").iterdir()); labels = sorted(p.name for p in (tmp_path / "test/labelsTs").iterdir())
    assert len(images) == len(pd.read_csv(phantoms)) and [i.replace("_0000", "") for i in images] == labels
    shutil.copytree(tmp_path / "test/labelsTs", tmp_path / "pred")  # stands in for nnUNetv2_predict's output: one map per image, the same names
    cases, _ = score_method(FolderPredictor(tmp_path / "pred", name="nnunet"), phantoms, "nnunet", progress=False)
    assert "error" not in cases and (cases["dice"] == 1.0).all() and cases["predict_s"].isna().all()
