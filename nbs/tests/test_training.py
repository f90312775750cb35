"""spine_nb.training end to end: `spine-nb train` for each stage on a tiny synthetic set, resume, bad input,
identification statistics in stage-2 checkpoints, DDP under torchrun (CPU, gloo), the real TotalSegmentator CT, and
papermill runs of the three training notebooks."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT, BIN

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def train(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    "Run `train_cli` in a fresh interpreter (the venv's python), as `spine-nb train` would."
    argv = list(map(str, args)) + ["--preset", "tiny", "--device", "cpu", "--no_progress"]
    code = f"from spine_nb.methods.payer.trainers import train_cli; raise SystemExit(train_cli({argv!r}))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", errors="replace", env=ENV, cwd=ROOT, timeout=300)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from spine_nb.data.phantom import generate_dataset
    return generate_dataset(tmp_path_factory.mktemp("data"), 4, seed=0, spacing=(4.0, 4.0, 4.0), progress=False)


@pytest.mark.parametrize("stage", ["spine", "vertebrae", "segmentation"])
def test_train_one_epoch(dataset, tmp_path, stage):
    r = train("--stage", stage, "--csv", dataset, "--output", tmp_path, "--epochs", 1)
    assert "best validation loss" in r.stderr  # through logging, on stderr
    ck = tmp_path / "payer" / stage / "checkpoints" / "fold_0"
    assert {"best.pth", "latest.pth", "epoch_0000.pth"} <= {p.name for p in ck.iterdir()}
    hist = json.loads((tmp_path / "payer" / stage / "logs" / "fold_0" / "history.json").read_text(encoding="utf-8"))
    assert hist["epoch"] == [0] and all(v[0] is not None for k, v in hist.items() if k.endswith("loss"))
    import torch
    from spine_nb.methods.payer.plan import build_stage_network
    c = torch.load(ck / "best.pth", weights_only=False)
    assert c["stage"] == stage and c["config"]["preset"] == "tiny"
    build_stage_network(stage, **c["network_config"]).load_state_dict(c["model"])  # self-describing
    if stage == "vertebrae": check_sequence_model(dataset, ck / "best.pth")


def check_sequence_model(dataset: Path, best: Path):
    "The stage-2 checkpoint carries the identification statistics of the training split, and inference reads them."
    import torch
    from spine_nb.methods.payer.trainers import fit_train_sequence_model
    from spine_nb.training.config import load_dataset
    from spine_nb.methods.payer.predictor import load_stage_models
    from spine_nb.anatomy import sequence_model_from_dataset
    from spine_nb.data.io import read_dataset_csv
    tr, va = load_dataset(dataset, 0, 2)
    sm = torch.load(best, weights_only=False)["sequence_model"]
    assert sm == fit_train_sequence_model(tr) and sm["pairs"]
    everything = sequence_model_from_dataset(read_dataset_csv(dataset), split=None).to_dict()
    assert sum(p["count"] for p in sm["pairs"]) < sum(p["count"] for p in everything["pairs"])  # validation cases left out
    assert load_stage_models(best, "vertebrae").meta[0]["sequence_model"] == sm


def test_resume(dataset, tmp_path):
    train("--stage", "vertebrae", "--csv", dataset, "--output", tmp_path, "--epochs", 1)
    latest = tmp_path / "payer" / "vertebrae" / "checkpoints" / "fold_0" / "latest.pth"
    train("--stage", "vertebrae", "--csv", dataset, "--output", tmp_path, "--epochs", 2, "--resume", latest)
    hist = json.loads((tmp_path / "payer" / "vertebrae" / "logs" / "fold_0" / "history.json").read_text(encoding="utf-8"))
    assert hist["epoch"] == [0, 1]
    import torch
    assert torch.load(latest, weights_only=False)["epoch"] == 1


def test_bad_inputs(dataset, tmp_path):
    import numpy as np, SimpleITK as sitk
    from spine_nb.data.io import read_dataset_csv, write_dataset_csv
    df = read_dataset_csv(dataset)
    bad = df.copy(); bad.loc[1, "mask_path"] = str(tmp_path / "gone_msk.nii.gz"); write_dataset_csv(bad, tmp_path / "missing.csv")
    r = train("--stage", "spine", "--csv", tmp_path / "missing.csv", "--output", tmp_path / "o", "--quiet", check=False)
    assert r.returncode == 2 and "gone_msk.nii.gz" in r.stderr, r.stdout + r.stderr  # errors show under --quiet

    m = sitk.ReadImage(df.loc[0, "mask_path"]); a = sitk.GetArrayFromImage(m); a[a == 20] = 120
    mi = sitk.GetImageFromArray(a); mi.CopyInformation(m); sitk.WriteImage(mi, str(tmp_path / "spider_msk.nii.gz"))
    bad = df.copy(); bad.loc[0, "mask_path"] = str(tmp_path / "spider_msk.nii.gz"); write_dataset_csv(bad, tmp_path / "labels.csv")
    r = train("--stage", "spine", "--csv", tmp_path / "labels.csv", "--output", tmp_path / "o", check=False)
    assert r.returncode == 2 and "labels [120] are not VerSe" in r.stderr and "spider_msk.nii.gz" in r.stderr, r.stdout + r.stderr

    r = train("--stage", "spine", "--csv", dataset, "--output", tmp_path / "o", "--epochs", 1, "-q")
    assert "best validation loss" not in r.stdout + r.stderr  # --quiet: warnings and errors only
    ck = tmp_path / "o" / "payer" / "spine" / "checkpoints" / "fold_0" / "latest.pth"
    r = train("--stage", "segmentation", "--csv", dataset, "--output", tmp_path / "o", "--resume", ck, check=False)
    assert r.returncode == 2 and "is a 'spine' checkpoint" in r.stderr, r.stdout + r.stderr
    r = train("--stage", "spine", "--csv", dataset, "--output", tmp_path / "o", "--resume", tmp_path / "nope.pth", check=False)
    assert r.returncode == 2 and "nope.pth does not exist" in r.stderr


def test_cli_help():
    r = subprocess.run([sys.executable, "-c", "from spine_nb.methods.payer.trainers import train_cli; train_cli(['--help'])"],
                       capture_output=True, text=True, encoding="utf-8", errors="replace", env=ENV, cwd=ROOT)
    assert "spine-nb train" in r.stdout and "--resume" in r.stdout


@pytest.mark.timeout(300)
def test_torchrun_ddp(dataset, tmp_path):
    "`torchrun --nproc_per_node 2 -m spine_nb.train` trains one model with DDP on CPU (gloo); rank 0 alone writes."
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "spine_nb.train", "--stage", "spine",
           "--preset", "tiny", "--csv", str(dataset), "--output", str(tmp_path), "--device", "cpu", "--no_progress", "--epochs", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", env=ENV, cwd=tmp_path, timeout=280)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.count("best validation loss") == 1, r.stderr  # logged by the main process only
    ck = tmp_path / "payer" / "spine" / "checkpoints" / "fold_0"
    assert {"best.pth", "latest.pth", "epoch_0000.pth", "epoch_0001.pth"} <= {p.name for p in ck.iterdir()}
    hist = json.loads((tmp_path / "payer" / "spine" / "logs" / "fold_0" / "history.json").read_text(encoding="utf-8"))
    import math, torch
    assert hist["epoch"] == [0, 1] and all(math.isfinite(v) for v in hist["train_loss"] + hist["val_loss"])
    c = torch.load(ck / "latest.pth", weights_only=False)
    assert c["epoch"] == 1 and not any(k.startswith("module.") for k in c["model"])  # unwrapped before saving


@pytest.mark.timeout(300)
def test_real_totalseg_all_stages(real_data, tmp_path):
    "The real TotalSegmentator CT (label_convention totalseg, no centroid file) trains through all three stages."
    import math, torch, pandas as pd
    from spine_nb.data.io import write_dataset_csv
    src = real_data / "totalseg_ct"
    if not (src / "example_ct.nii.gz").exists(): pytest.skip(f"{src} lacks example_ct.nii.gz")
    rows = [dict(name=f"ts{i}", type="train", image_path=str(src / "example_ct.nii.gz"),
                 mask_path=str(src / "example_seg_fast_force_split.nii.gz"), centroid_json_path="", label_convention="totalseg") for i in (1, 2)]
    csv = write_dataset_csv(pd.DataFrame(rows), tmp_path / "real.csv")
    for stage in ("spine", "vertebrae", "segmentation"):
        train("--stage", stage, "--csv", csv, "--output", tmp_path / "run", "--epochs", 1, "--num_folds", 2)
        ck = tmp_path / "run" / "payer" / stage / "checkpoints" / "fold_0"
        assert (ck / "best.pth").exists() and (ck / "latest.pth").exists(), stage
        hist = json.loads((tmp_path / "run" / "payer" / stage / "logs" / "fold_0" / "history.json").read_text(encoding="utf-8"))
        assert all(math.isfinite(hist[k][0]) for k in ("train_loss", "val_loss")), (stage, hist)
    sm = torch.load(tmp_path / "run" / "payer" / "vertebrae" / "checkpoints" / "fold_0" / "best.pth", weights_only=False)["sequence_model"]
    assert {(p["from"], p["to"]) for p in sm["pairs"]} >= {(20, 21), (21, 22), (22, 23), (23, 24)}  # L1..L5 from the converted mask


def test_training_notebooks(tmp_path):
    "The three training notebooks run with their defaults (tiny preset, synthetic data) under papermill."
    pm = pytest.importorskip("papermill")
    env = {"SPINE_NB_DATA": str(tmp_path / "data"), "SPINE_NB_OUTPUTS": str(tmp_path / "outputs")}
    old = {k: os.environ.get(k) for k in (*env, "MPLBACKEND")}
    os.environ.update(env, MPLBACKEND="Agg")
    try:
        for nb in ["10_train.spine.ipynb", "11_train.vertebrae.ipynb", "12_train.segmentation.ipynb"]:
            pm.execute_notebook(str(ROOT / "nbs" / "pipelines" / nb), str(tmp_path / nb), cwd=str(ROOT / "nbs" / "pipelines"), progress_bar=False, kernel_name="python3")
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    for stage in ("spine", "vertebrae", "segmentation"):
        run = tmp_path / "outputs" / "train" / "payer" / stage
        assert (run / "checkpoints" / "fold_0" / "best.pth").exists()
        assert {"targets.png", "history.png", "prediction.png"} <= {p.name for p in (run / "figures").iterdir()}
