"""spine_nb.training end to end: `spine-nb train` for each stage on a tiny synthetic set, resume, bad input, and
papermill runs of the three training notebooks."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def train(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    "Run `train_cli` in a fresh interpreter (the venv's python), as `spine-nb train` would."
    argv = list(map(str, args)) + ["--preset", "tiny", "--device", "cpu", "--no_progress"]
    code = f"from spine_nb.training import train_cli; raise SystemExit(train_cli({argv!r}))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from spine_nb.data.phantom import generate_dataset
    return generate_dataset(tmp_path_factory.mktemp("data"), 4, seed=0, spacing=(4.0, 4.0, 4.0), progress=False)


@pytest.mark.parametrize("stage", ["spine", "vertebrae", "segmentation"])
def test_train_one_epoch(dataset, tmp_path, stage):
    r = train("--stage", stage, "--csv", dataset, "--output", tmp_path, "--epochs", 1)
    assert "best validation loss" in r.stdout
    ck = tmp_path / stage / "checkpoints" / "fold_0"
    assert {"best.pth", "latest.pth", "epoch_0000.pth"} <= {p.name for p in ck.iterdir()}
    hist = json.loads((tmp_path / stage / "logs" / "fold_0" / "history.json").read_text())
    assert hist["epoch"] == [0] and all(v[0] is not None for k, v in hist.items() if k.endswith("loss"))
    import torch
    from spine_nb.networks import build_network
    c = torch.load(ck / "best.pth", weights_only=False)
    assert c["stage"] == stage and c["config"]["preset"] == "tiny"
    build_network(stage, **c["network_config"]).load_state_dict(c["model"])  # self-describing


def test_resume(dataset, tmp_path):
    train("--stage", "vertebrae", "--csv", dataset, "--output", tmp_path, "--epochs", 1)
    latest = tmp_path / "vertebrae" / "checkpoints" / "fold_0" / "latest.pth"
    train("--stage", "vertebrae", "--csv", dataset, "--output", tmp_path, "--epochs", 2, "--resume", latest)
    hist = json.loads((tmp_path / "vertebrae" / "logs" / "fold_0" / "history.json").read_text())
    assert hist["epoch"] == [0, 1]
    import torch
    assert torch.load(latest, weights_only=False)["epoch"] == 1


def test_bad_inputs(dataset, tmp_path):
    import numpy as np, SimpleITK as sitk
    from spine_nb.data.io import read_dataset_csv, write_dataset_csv
    df = read_dataset_csv(dataset)
    bad = df.copy(); bad.loc[1, "mask_path"] = str(tmp_path / "gone_msk.nii.gz"); write_dataset_csv(bad, tmp_path / "missing.csv")
    r = train("--stage", "spine", "--csv", tmp_path / "missing.csv", "--output", tmp_path / "o", check=False)
    assert r.returncode == 2 and "gone_msk.nii.gz" in r.stdout, r.stdout + r.stderr

    m = sitk.ReadImage(df.loc[0, "mask_path"]); a = sitk.GetArrayFromImage(m); a[a == 20] = 120
    mi = sitk.GetImageFromArray(a); mi.CopyInformation(m); sitk.WriteImage(mi, str(tmp_path / "spider_msk.nii.gz"))
    bad = df.copy(); bad.loc[0, "mask_path"] = str(tmp_path / "spider_msk.nii.gz"); write_dataset_csv(bad, tmp_path / "labels.csv")
    r = train("--stage", "spine", "--csv", tmp_path / "labels.csv", "--output", tmp_path / "o", check=False)
    assert r.returncode == 2 and "labels [120] are not VerSe" in r.stdout and "spider_msk.nii.gz" in r.stdout, r.stdout + r.stderr

    train("--stage", "spine", "--csv", dataset, "--output", tmp_path / "o", "--epochs", 1)
    ck = tmp_path / "o" / "spine" / "checkpoints" / "fold_0" / "latest.pth"
    r = train("--stage", "segmentation", "--csv", dataset, "--output", tmp_path / "o", "--resume", ck, check=False)
    assert r.returncode == 2 and "is a 'spine' checkpoint" in r.stdout, r.stdout + r.stderr
    r = train("--stage", "spine", "--csv", dataset, "--output", tmp_path / "o", "--resume", tmp_path / "nope.pth", check=False)
    assert r.returncode == 2 and "nope.pth does not exist" in r.stdout


def test_cli_help():
    r = subprocess.run([sys.executable, "-c", "from spine_nb.training import train_cli; train_cli(['--help'])"],
                       capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert "spine-nb train" in r.stdout and "--resume" in r.stdout


def test_training_notebooks(tmp_path):
    "The three training notebooks run with their defaults (tiny preset, synthetic data) under papermill."
    pm = pytest.importorskip("papermill")
    env = {"SPINE_NB_DATA": str(tmp_path / "data"), "SPINE_NB_OUTPUTS": str(tmp_path / "outputs")}
    old = {k: os.environ.get(k) for k in (*env, "MPLBACKEND")}
    os.environ.update(env, MPLBACKEND="Agg")
    try:
        for nb in ["10_train.spine.ipynb", "11_train.vertebrae.ipynb", "12_train.segmentation.ipynb"]:
            pm.execute_notebook(str(ROOT / "nbs" / nb), str(tmp_path / nb), cwd=str(ROOT / "nbs"), progress_bar=False, kernel_name="python3")
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    for stage in ("spine", "vertebrae", "segmentation"):
        run = tmp_path / "outputs" / "train" / stage
        assert (run / "checkpoints" / "fold_0" / "best.pth").exists()
        assert {"targets.png", "history.png", "prediction.png"} <= {p.name for p in (run / "figures").iterdir()}
