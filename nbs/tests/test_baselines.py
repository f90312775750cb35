"""The MONAI baselines from the command line, as a user runs them: `spine-nb train --method baselines`, then
`spine-nb infer --method baselines` and `spine-nb evaluate` on its outputs (the same metrics code as every method)."""
import subprocess, sys
import pandas as pd
import pytest
from conftest import ROOT, BIN


def run(*args, cwd=ROOT):
    return subprocess.run([str(BIN / "spine-nb"), *args], capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=cwd)


def test_train_infer_evaluate_from_the_command_line(tmp_path):
    r = run("phantom", "--out", str(tmp_path / "d"), "--n", "4", "--seed", "3", "--spacing", "6", "--test-fraction", "0.25", "-q")
    assert r.returncode == 0, r.stderr
    csv = tmp_path / "d" / "dataset.csv"
    r = run("train", "--method", "baselines", "--csv", str(csv), "--output", str(tmp_path / "m"), "--preset", "tiny", "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m" / "baselines" / "semantic" / "checkpoints" / "fold_0" / "best.pth").is_file()
    r = run("infer", "--method", "baselines", "--image", str(csv), "--split", "test", "--model_dir", str(tmp_path / "m"),
            "--output", str(tmp_path / "p"), "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    summary = pd.read_csv(tmp_path / "p" / "summary.csv")
    assert len(summary) == 1 and summary["status"].tolist() == ["ok"]
    r = run("evaluate", "--pred", str(tmp_path / "p"), "--csv", str(csv), "--split", "test", "--out", str(tmp_path / "metrics.csv"))
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path / "metrics.csv")) > 0


def test_unknown_method_is_one_clear_error():
    r = run("train", "--method", "nnunet", "--csv", "x.csv")
    assert r.returncode == 2 and "unknown --method 'nnunet'; use one of payer, baselines, iterative_fcn" in r.stderr


def test_baseline_commands_run_as_modules_with_help():
    for cmd in ("train", "infer"):
        r = subprocess.run([sys.executable, "-m", f"spine_nb.{cmd}", "--method", "baselines", "--help"], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0 and f"spine-nb {cmd} --method baselines" in r.stdout, r.stderr


def test_spine_scheme_writes_discs_and_a_tissue_map(tmp_path):
    "The `spine` scheme on MR phantoms: every level, discs named 100 + X after the vertebra above, and `<case>_semantic.nii.gz`."
    import numpy as np, SimpleITK as sitk
    r = run("phantom", "--out", str(tmp_path / "d"), "--n", "3", "--seed", "4", "--modality", "mr", "--fov", "lumbar", "--spacing", "6", "--test-fraction", "0.34", "-q")
    assert r.returncode == 0, r.stderr
    csv = tmp_path / "d" / "dataset.csv"
    r = run("train", "--method", "baselines", "--label_scheme", "spine", "--modality", "mri", "--csv", str(csv), "--output", str(tmp_path / "m"),
            "--preset", "tiny", "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    r = run("infer", "--method", "baselines", "--image", str(csv), "--split", "test", "--model_dir", str(tmp_path / "m"),
            "--output", str(tmp_path / "p"), "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    sem = list((tmp_path / "p").glob("*_semantic.nii.gz"))
    assert len(sem) == 1, sorted(p.name for p in (tmp_path / "p").iterdir())
    assert set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(sem[0]))))) <= {0, 1, 2, 3}
    seg = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(next((tmp_path / "p").glob("*_segmentation.nii.gz"))))))
    assert all(v == 0 or 1 <= v <= 28 or 101 <= v <= 128 for v in seg), seg
