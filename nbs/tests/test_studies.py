"""Lumbar MRI studies in the RSNA layout through `spine-nb studies` with the shipped models: a 3-study trial on a synthetic
fixture (several series per study, an axial-only study, a truncated file, a stray non-DICOM file, an id with no folder)
and the real thoracolumbar T2 MRI written as an RSNA study."""
import json, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from spine_nb.data.io import read_image, reorient, real_data_root
from spine_nb.data.rsna import rsna_fixture, _write_rsna_series
from spine_nb.inference.studies import study_files
from spine_nb.methods.payer.predictor import studies_cli


def test_trial_of_three_studies(tmp_path):
    fx = rsna_fixture(tmp_path / "rsna", 3, layout={1: ["axial_t2"]}, corrupt=[2])
    (fx / "train_images" / "1000" / "1" / "README.txt").write_text("not a DICOM file")
    (tmp_path / "ids.txt").write_text("1000\n1001\n1002\n4242\n")
    t0 = time.perf_counter()
    rc = studies_cli([str(fx), "--studies", str(tmp_path / "ids.txt"), "--output", str(tmp_path / "out"), "--weights", "payer-mr-cpu", "-q"])
    took = time.perf_counter() - t0
    table = pd.read_csv(tmp_path / "out" / "studies.csv", dtype={"study_id": str})
    assert rc == 1 and took <= 180, (rc, took)
    assert dict(zip(table["study_id"], table["status"])) == {"4242": "missing", "1000": "ok", "1001": "error", "1002": "error"}
    err = dict(zip(table["study_id"], table["error"]))
    assert "no sagittal T2/STIR series" in err["1001"] and "misses 1 slice" in err["1002"], err
    meta = json.loads(study_files(tmp_path / "out", "1000")["metadata"].read_text())
    assert meta["series"]["description"] == "Sagittal T2/STIR" and meta["other_series"] == {"sagittal_t1": ["2"], "axial_t2": ["3"]}
    assert all(Path(p).is_file() for p in meta["outputs"].values()) and {"nifti", "seg_vert", "ctd", "centroids", "labels", "qc"} <= set(meta["outputs"])
    assert meta["lstv"]["status"] in ("normal", "lumbarisation", "sacralisation", "uncertain") and meta["lstv"]["reason"]
    rc2 = studies_cli([str(fx), "--studies", str(tmp_path / "ids.txt"), "--output", str(tmp_path / "out"), "--weights", "payer-mr-cpu", "-q"])  # a re-run skips the complete study
    assert rc2 == 1 and pd.read_csv(tmp_path / "out" / "studies.csv", dtype={"study_id": str}).set_index("study_id").loc["1000", "status"] == "skipped"


@pytest.mark.skipif(real_data_root() is None, reason="../shared/data/real is not here (the real scans are not part of a user's clone)")
@pytest.mark.parametrize("weights", ["payer-mr-cpu", "baselines-mr-ribs-cpu2d", None], ids=["payer-mr-cpu", "ribs", "default"])
def test_real_thoracolumbar_mri_is_not_guessed(tmp_path, weights):
    "sct_t2_lumbar shows about T9 to L2/L3 and not the sacrum: its LSTV status must be `uncertain`, with the reason."
    img = reorient(read_image(real_data_root() / "sct_t2_lumbar" / "t2_lumbar.nii.gz"), "PIR")  # sagittal slices
    _write_rsna_series(sitk.Cast(img, sitk.sitkInt16), tmp_path / "rsna" / "train_images" / "1" / "11", "Sagittal T2/STIR", "2.25.1")
    rc = studies_cli([str(tmp_path / "rsna"), "--output", str(tmp_path / "out"), "-q", *(["--weights", weights] if weights else [])])
    meta = json.loads(study_files(tmp_path / "out", "1")["metadata"].read_text())
    assert rc == 0 and meta["status"] == "ok", meta.get("error")
    assert meta["lstv"]["status"] == "uncertain" and meta["lstv"]["reason"], meta["lstv"]
    assert any("DICOM descriptions" in w or "DICOM SeriesDescription" in w for w in meta["warnings"]), meta["warnings"]  # no CSV: said so


def test_no_mr_default_is_said_once(tmp_path, capsys):
    "Without an MR family good enough to be the default, the command stops before the batch and names the experimental one."
    fx = rsna_fixture(tmp_path / "rsna", 1, spacing=(3.0, 3.0, 6.0))
    from spine_nb.inference.weights import find_family, WeightsError
    try: find_family(None, "mr"); pytest.skip("an MR family is the default now")
    except WeightsError: pass
    assert studies_cli([str(fx), "--output", str(tmp_path / "out")]) == 2
    assert "payer-mr-cpu" in capsys.readouterr().err and not (tmp_path / "out" / "studies.csv").exists()
