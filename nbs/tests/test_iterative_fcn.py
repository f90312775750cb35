"""IterativeFCN from the command line on the CSI 2014 layout, as a user with that data would run it: `spine-nb csi2014`,
`spine-nb train --method iterative_fcn`, `spine-nb infer --method iterative_fcn`, then `spine-nb evaluate` (Dice per label,
the same metrics code as every method)."""
import subprocess
import pandas as pd
import SimpleITK as sitk
from conftest import ROOT, BIN
from spine_nb.data.phantom import make_phantom


def run(*args):
    return subprocess.run([str(BIN / "spine-nb"), *args], capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=ROOT)


def test_csi2014_layout_train_infer_evaluate(tmp_path):
    csi = tmp_path / "csi"; csi.mkdir()
    for k, fov in enumerate(("lumbar", "thoracolumbar", "lumbar", "thoracolumbar", "lumbar"), start=1):  # caseN.mha + caseN_label.mha
        ph = make_phantom(k, fov=fov, spacing=4.0)
        sitk.WriteImage(ph["image"], str(csi / f"case{k}.mha")); sitk.WriteImage(ph["mask"], str(csi / f"case{k}_label.mha"))
    r = run("csi2014", "--dataset", str(csi), "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    csv = tmp_path / "d" / "dataset.csv"
    assert pd.read_csv(csv)["type"].tolist() == ["train"] * 4 + ["test"]
    r = run("train", "--method", "iterative_fcn", "--csv", str(csv), "--output", str(tmp_path / "m"), "--preset", "tiny", "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m" / "iterative_fcn" / "instances" / "checkpoints" / "fold_0" / "best.pth").is_file()
    r = run("infer", "--method", "iterative_fcn", "--image", str(csv), "--split", "test", "--model_dir", str(tmp_path / "m"),
            "--output", str(tmp_path / "p"), "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(tmp_path / "p" / "summary.csv")["status"].tolist() == ["ok"]
    r = run("evaluate", "--pred", str(tmp_path / "p"), "--csv", str(csv), "--split", "test", "--out", str(tmp_path / "metrics.csv"))
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path / "metrics.csv")) > 0
