"""Tests of spine_nb.evaluation.metrics: agreement with MONAI on synthetic and real masks, the VerSe identification rule,
missing/extra vertebrae, speed, dataset evaluation and the `spine-nb evaluate` command."""
from __future__ import annotations
import json, shutil, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage
from monai.metrics import compute_dice, compute_iou, compute_hausdorff_distance, compute_average_surface_distance

from spine_nb.core import convert_labels
from spine_nb.evaluation.metrics import VerSeMetrics, binary_metrics, identification_hits, mask_centroids, evaluate_dataset, evaluate_cli, summary_path, dataset_summary

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
if not REAL.exists(): REAL = Path("/work/shared/data/real")
needs_real = pytest.mark.skipif(not REAL.exists(), reason="real test data folder ../shared/data/real is absent")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI 1.6's internal deprecated-argument use
KEYS = ("dice", "iou", "hausdorff", "hd95", "assd")
MAX_DIFF: dict[str, float] = {}


def monai_full(pred: np.ndarray, gt: np.ndarray, lab: int, spacing, margin: int | None = None) -> dict[str, float]:
    """MONAI's public metric functions for one label on the whole volume, or (`margin`) on the union box grown by
    `margin` >= 2 voxels, which MONAI's own foreground crop (margin 1) makes equivalent, only cheaper."""
    p, g = pred == lab, gt == lab
    if margin is not None:
        idx = np.argwhere(p | g); lo, hi = np.maximum(idx.min(0) - margin, 0), idx.max(0) + margin + 1
        box = tuple(slice(a, b) for a, b in zip(lo, hi)); p, g = p[box], g[box]
    p = torch.from_numpy(p.astype(np.float32))[None, None]
    g = torch.from_numpy(g.astype(np.float32))[None, None]
    sp = [float(s) for s in spacing]
    return dict(dice=compute_dice(p, g).item(), iou=compute_iou(p, g).item(),
                hausdorff=compute_hausdorff_distance(p, g, include_background=True, spacing=sp).item(),
                hd95=compute_hausdorff_distance(p, g, include_background=True, percentile=95, spacing=sp).item(),
                assd=compute_average_surface_distance(p, g, include_background=True, symmetric=True, spacing=sp).item())


def check_against_monai(res: dict, pred: np.ndarray, gt: np.ndarray, spacing, tag: str, atol: float = 1e-3, margin: int | None = None) -> float:
    "Every present vertebra's metrics equal MONAI's; returns the largest absolute difference."
    worst = 0.0
    present = [r for r in res["vertebrae"] if r["status"] == "present"]
    assert present, "nothing to compare"
    for r in present:
        ref = monai_full(pred, gt, r["label"], spacing, margin)
        for k in KEYS:
            d = abs(r[k] - ref[k]); worst = max(worst, d)
            assert d <= atol, f"{tag} label {r['label']} {k}: ours {r[k]} vs MONAI {ref[k]}"
    MAX_DIFF[tag] = worst
    print(f"{tag}: max |ours - MONAI| = {worst:.2e} over {len(present)} vertebrae")
    return worst


def ball(shape, centre, radius, spacing=(1, 1, 1)) -> np.ndarray:
    zz = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((z - c) ** 2 for z, c in zip(zz, centre)) <= radius ** 2


# ---------------------------------------------------------------- synthetic pairs with known answers
def test_cubes_known_offset_anisotropic():
    a = np.zeros((40, 40, 40), np.uint8); a[10:20, 10:20, 10:20] = 20
    b = np.roll(a, 2, axis=0)                                  # 2 voxels along the 2.5 mm axis = 5 mm
    sp = (2.5, 1.0, 0.8)
    r = VerSeMetrics(spacing=sp).evaluate_case(b, a)["vertebrae"][0]
    assert r["dice"] == pytest.approx(0.8) and r["iou"] == pytest.approx(8 / 12)
    assert r["hausdorff"] == pytest.approx(5.0) and r["hd95"] == pytest.approx(5.0)
    assert r["loc_dist"] == pytest.approx(5.0)
    check_against_monai({"vertebrae": [r]}, b, a, sp, "cubes 2.5x1x0.8 mm")
    c = np.roll(a, 3, axis=2)                                  # 3 voxels along the 0.8 mm axis = 2.4 mm
    r = VerSeMetrics(spacing=sp).evaluate_case(c, a)["vertebrae"][0]
    assert r["hausdorff"] == pytest.approx(2.4, abs=1e-5) and r["loc_dist"] == pytest.approx(2.4)


def test_concentric_spheres():
    sp = (1.0, 1.0, 1.0)
    gt = ball((50, 50, 50), (25, 25, 25), 10).astype(np.uint8) * 22
    pred = ball((50, 50, 50), (25, 25, 25), 13).astype(np.uint8) * 22
    r = VerSeMetrics(spacing=sp).evaluate_case(pred, gt)["vertebrae"][0]
    assert r["hausdorff"] == pytest.approx(3.0, abs=0.75)      # radii differ by 3 mm (voxelised)
    assert r["assd"] == pytest.approx(3.0, abs=0.5)
    assert r["dice"] == pytest.approx(2 * 10 ** 3 / (10 ** 3 + 13 ** 3), abs=0.03)
    check_against_monai({"vertebrae": [r]}, pred, gt, sp, "spheres r10/r13")


def test_spheres_offset_anisotropic_world_units():
    "The same physical spheres sampled at 1 mm and at 2x1x0.5 mm give (nearly) the same mm distances."
    out = {}
    for sp in [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5)]:
        shape = tuple(int(round(60 / s)) for s in sp)
        gt = ball(shape, (30, 30, 30), 12, sp).astype(np.uint8) * 20
        pred = ball(shape, (34, 30, 30), 12, sp).astype(np.uint8) * 20   # 4 mm offset
        res = VerSeMetrics(spacing=sp).evaluate_case(pred, gt)
        out[sp] = res["vertebrae"][0]
        assert out[sp]["loc_dist"] == pytest.approx(4.0, abs=0.05)
        assert out[sp]["hausdorff"] == pytest.approx(4.0, abs=1.0)
        check_against_monai(res, pred, gt, sp, f"offset spheres {sp}")
    assert abs(out[(1.0, 1.0, 1.0)]["assd"] - out[(2.0, 1.0, 0.5)]["assd"]) < 0.6


def test_binary_metrics_needs_non_empty():
    with pytest.raises(ValueError, match="non-empty"):
        binary_metrics(np.zeros((3, 3, 3), bool), np.ones((3, 3, 3), bool))


# ---------------------------------------------------------------- real masks
def _load(rel: str) -> sitk.Image:
    return sitk.ReadImage(str(REAL / rel))


def _image_like(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.astype(np.uint8)); img.CopyInformation(ref); return img


@needs_real
def test_verse004_shifted_eroded_vs_monai():
    gt_img = _load("verse004_labels_only/sub-verse004_seg-vert_msk.nii.gz")   # 1x1x2 mm, PIR, float64 labels
    gt = np.rint(sitk.GetArrayFromImage(gt_img)).astype(np.uint8)
    pred = np.roll(gt, 3, axis=1)                                            # 3 voxels along one array axis
    pred[ndimage.binary_erosion(pred == 20, iterations=2) ^ (pred == 20)] = 0  # erode L1 by two voxels
    pred[pred == 24] = 0                                                     # L5 missing
    res = VerSeMetrics().evaluate_case(_image_like(pred, gt_img), gt_img)
    sp = gt_img.GetSpacing()[::-1]
    check_against_monai(res, pred, gt, sp, "verse004 shifted+eroded (1x1x2 mm)", margin=3)
    agg = res["aggregate"]
    assert agg["n_gt"] == 9 and agg["n_missing"] == 1 and agg["n_extra"] == 0
    assert agg["recall"] == pytest.approx(8 / 9) and agg["precision"] == 1.0


@needs_real
def test_tptbox_dilated_vs_monai():
    gt_img = _load("tptbox_ct/sub-ct_seg-vert_label-22_msk.nii.gz")          # 1.5 mm iso, PIR, 21..23
    gt = sitk.GetArrayFromImage(gt_img)
    pred = ndimage.grey_dilation(gt, size=(3, 3, 3))
    res = VerSeMetrics().evaluate_case(_image_like(pred, gt_img), gt_img)
    check_against_monai(res, pred, gt, gt_img.GetSpacing()[::-1], "tptbox dilated (1.5 mm)")
    assert {r["name"] for r in res["vertebrae"]} == {"L2", "L3", "L4"}


@needs_real
def test_totalseg_3mm_vs_monai():
    img = _load("totalseg_ct/example_seg_fast_force_split.nii.gz")            # 3 mm, TotalSegmentator ids
    gt = convert_labels(sitk.GetArrayFromImage(img), "totalseg")
    pred = np.roll(gt, 1, axis=0); pred = np.roll(pred, -1, axis=2)
    res = VerSeMetrics().evaluate_case(_image_like(pred, img), _image_like(gt, img))
    check_against_monai(res, pred, gt, img.GetSpacing()[::-1], "TotalSegmentator 3 mm shifted")
    assert {r["name"] for r in res["vertebrae"]} >= {"T11", "T12", "L1", "L5", "S"}


@needs_real
def test_grid_mismatch_is_a_clear_error():
    gt_img = _load("tptbox_ct/sub-ct_seg-vert_label-22_msk.nii.gz")
    moved = sitk.Image(gt_img); moved.SetOrigin([o + 5 for o in gt_img.GetOrigin()])
    with pytest.raises(ValueError, match="same grid.*origin"):
        VerSeMetrics().evaluate_case(moved, gt_img)
    with pytest.raises(ValueError, match="resample"):
        VerSeMetrics().evaluate_case(sitk.Resample(gt_img, [20, 20, 20]), gt_img)


# ---------------------------------------------------------------- identification (VerSe get_hits)
def verse_get_hits(gt: dict, pred: dict, max_vert_idx: int = 28, thr: float = 20.0):
    "Independent port of the VerSe benchmark's eval_utilities.get_hits (NaN-padded arrays, pred x gt matrix)."
    G = np.full((max_vert_idx, 3), np.nan); P = np.full((max_vert_idx, 3), np.nan)
    for k, v in gt.items(): G[k - 1] = v
    for k, v in pred.items(): P[k - 1] = v
    hit_list = np.full(max_vert_idx, np.nan)
    in_im = np.argwhere(~np.isnan(G[:, 0])).ravel() + 1; in_pred = np.argwhere(~np.isnan(P[:, 0])).ravel() + 1
    hit_list[in_im - 1] = 0
    inter = np.intersect1d(in_im, in_pred)
    if inter.size:
        d = np.sqrt(((P[:, None, :] - G[None, :, :]) ** 2).sum(-1))[inter - 1][:, inter - 1]
        m = np.ones_like(d, bool); m[range(len(d)), np.argmin(d, axis=1)] = False; d[m] = np.nan
        dd = np.diagonal(d).copy(); dd[dd > thr] = np.nan
        hit_list[inter[~np.isnan(dd)] - 1] = 1
    return {k + 1: bool(h == 1) for k, h in enumerate(hit_list) if not np.isnan(h)}


def test_identification_matches_verse_reference():
    rng = np.random.default_rng(0)
    for trial in range(200):
        labels = list(range(8 + rng.integers(0, 5), 20 + rng.integers(0, 6)))
        gt = {l: np.array([0.0, 0.0, 25.0 * i]) + rng.normal(0, 2, 3) for i, l in enumerate(labels)}
        pred = {l: v + rng.normal(0, rng.choice([2, 8, 15]), 3) for l, v in gt.items() if rng.random() > 0.15}
        if rng.random() < 0.3 and len(pred) > 2:  # an off-by-one labelling shift of part of the spine
            ks = sorted(pred); pred = {(k + 1 if k > ks[len(ks) // 2] and k + 1 <= 25 else k): v for k, v in pred.items()}
        if rng.random() < 0.2: pred[26] = np.array([0.0, 0.0, -40.0])   # an extra label not in the GT
        for thr in (20.0, 4.0):
            assert identification_hits(pred, gt, thr) == verse_get_hits(gt, pred, thr=thr), trial


@needs_real
def test_identification_with_verse004_ctd():
    from spine_nb.evaluation.metrics import _read_ctd_world
    img = _load("verse004_labels_only/sub-verse004_seg-vert_msk.nii.gz")
    ctd = _read_ctd_world(REAL / "verse004_labels_only/sub-verse004_seg-subreg_ctd.json", img)
    assert sorted(ctd) == list(range(16, 25))
    com = mask_centroids(img)
    d = [np.linalg.norm(ctd[k] - com[k]) for k in ctd]
    assert 5 < np.median(d) < 20                      # body centroids sit ~12 mm anterior of the mask centre
    pred = dict(ctd); pred[18] = ctd[18] + np.array([0, 0, 10.0]); del pred[24]
    res = VerSeMetrics().evaluate_case(img, img, pred, ctd)
    agg = res["aggregate"]
    assert agg["id_rate"] == pytest.approx(8 / 9) and agg["id_rate_4mm"] == pytest.approx(7 / 9)
    assert agg["mld"] == pytest.approx(10 / 8)
    # T9 (16) in the mask but in neither centroid set, like a partial vertebra VerSe leaves out: not scored
    gt8 = {k: v for k, v in ctd.items() if k != 16}; pred8 = {k: v for k, v in pred.items() if k != 16}
    res = VerSeMetrics().evaluate_case(img, img, pred8, gt8)
    agg = res["aggregate"]
    assert (agg["n_gt"], agg["n_id"]) == (9, 8) and agg["id_rate"] == pytest.approx(7 / 8)
    assert np.isnan(res["vertebrae"][0]["id_hit"]) and res["vertebrae"][0]["dice"] == 1.0


# ---------------------------------------------------------------- missing / extra
def test_missing_and_extra_rule():
    gt = np.zeros((80, 30, 30), np.uint8); pred = np.zeros_like(gt)
    for k, lab in enumerate([20, 21, 22, 23]): gt[5 + 15 * k: 15 + 15 * k, 5:25, 5:25] = lab
    pred[:] = gt; pred[pred == 23] = 0; pred[0:4, 5:25, 5:25] = 19; pred[70:78, 5:25, 5:25] = 26
    res = VerSeMetrics(spacing=1).evaluate_case(pred, gt)
    df = pd.DataFrame(res["vertebrae"]).set_index("name")
    assert list(df.status) == ["extra", "present", "present", "present", "missing", "extra"]
    assert df.loc["L4", "dice"] == 0 and np.isnan(df.loc["L4", ["hausdorff", "hd95", "assd", "loc_dist"]].astype(float)).all()
    assert np.isnan(df.loc[["T12", "S"], "dice"].astype(float)).all()
    a = res["aggregate"]
    assert a["dice_mean"] == pytest.approx(3 / 4) and a["hd95_mean"] == 0 and a["id_rate"] == pytest.approx(3 / 4)
    assert (a["n_missing"], a["n_extra"], a["n_gt"], a["n_pred"]) == (1, 2, 4, 5)
    assert a["precision"] == pytest.approx(3 / 5) and a["recall"] == pytest.approx(3 / 4)
    assert set(res["regions"]) == {"thoracic", "lumbar", "sacral"}
    assert res["regions"]["lumbar"]["dice_mean"] == pytest.approx(3 / 4)
    empty = VerSeMetrics(spacing=1).evaluate_case(np.zeros_like(gt), gt)["aggregate"]
    assert empty["dice_mean"] == 0 and empty["id_rate"] == 0 and np.isnan(empty["hd95_mean"]) and np.isnan(empty["precision"])


# ---------------------------------------------------------------- speed
def spine_like(n: int = 17, spacing=(1.0, 1.0, 1.0), seed: int = 0) -> np.ndarray:
    "A 1 mm label map of `n` vertebra-like objects (body cylinder + arch ring + spinous box), T1 downwards."
    rng = np.random.default_rng(seed)
    shape = (n * 30 + 20, 140, 140)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    m = np.zeros(shape, np.uint8)
    for k in range(n):
        z0 = 10 + 30 * k; zs = slice(z0, z0 + 24); r = 14 + rng.integers(0, 6)
        body = ((y - 55) ** 2 + (x - 70) ** 2 <= r ** 2)
        arch = ((y - 85) ** 2 + (x - 70) ** 2 <= 16 ** 2) & ((y - 85) ** 2 + (x - 70) ** 2 >= 9 ** 2)
        sl = m[zs]; sl[np.broadcast_to(body | arch, sl.shape)] = 8 + k
        m[z0 + 6:z0 + 18, 100:125, 66:74] = 8 + k
    return m


def test_speed_17_vertebrae_1mm():
    gt = spine_like()
    pred = np.roll(gt, 2, axis=0); pred = ndimage.grey_dilation(pred, size=(1, 3, 3))
    assert len(np.unique(gt)) == 18
    t0 = time.perf_counter(); res = VerSeMetrics(spacing=1.0).evaluate_case(pred, gt); dt = time.perf_counter() - t0
    print(f"17-vertebra 1 mm case {gt.shape} ({gt.size / 1e6:.1f} M voxels): {dt:.2f} s")
    assert res["aggregate"]["n_present"] == 17 and res["aggregate"]["id_rate"] == 1.0
    assert dt < 20, f"evaluation took {dt:.1f} s"
    check_against_monai({"vertebrae": res["vertebrae"][:4]}, pred, gt, (1, 1, 1), "spine-like 1 mm (4 vertebrae)", margin=3)


# ---------------------------------------------------------------- dataset + CLI
def _write_dataset(root: Path, with_failure: bool = True) -> Path:
    (root / "pred").mkdir(parents=True, exist_ok=True)
    gt = spine_like(5)
    rows = []
    for i, name in enumerate(["case0", "case1", "case2"]):
        img = sitk.GetImageFromArray(gt); img.SetSpacing((1.0, 1.0, 1.0)); img.SetOrigin((i, 0, 0))
        sitk.WriteImage(img, str(root / f"{name}_msk.nii.gz"))
        rows.append(dict(name=name, type="val" if i < 2 else "train", image_path=f"{name}_msk.nii.gz", mask_path=f"{name}_msk.nii.gz", centroid_json_path=""))
        if with_failure and i == 1: continue                       # case1 has no prediction
        pred = sitk.GetImageFromArray(np.roll(gt, i, axis=0)); pred.CopyInformation(img)
        sitk.WriteImage(pred, str(root / "pred" / f"{name}_segmentation.nii.gz"))
    pd.DataFrame(rows).to_csv(root / "dataset.csv", index=False)
    return root / "dataset.csv"


def test_evaluate_dataset_records_failures(tmp_path):
    csv = _write_dataset(tmp_path)
    v, c = evaluate_dataset(tmp_path / "pred", csv, tmp_path / "out" / "metrics.csv", progress=False)
    assert list(c.status) == ["ok", "failed", "ok"] and "case1_segmentation.nii.gz" in c.error[1]
    assert (tmp_path / "out" / "metrics.csv").exists() and summary_path(tmp_path / "out" / "metrics.csv").exists()
    assert set(v.case) == {"case0", "case2"} and len(v) == 10
    assert c.loc[0, "dice_mean"] == 1.0 and c.loc[2, "dice_mean"] < 1.0 and "thoracic_dice_mean" in c
    assert dataset_summary(v)["id_rate"] == 1.0
    v, c = evaluate_dataset(tmp_path / "pred", csv, tmp_path / "val.csv", split="val", progress=False)
    assert list(c.case) == ["case0", "case1"]
    with pytest.raises(ValueError, match="type == 'test'"):
        evaluate_dataset(tmp_path / "pred", csv, tmp_path / "x.csv", split="test", progress=False)


def test_grid_mismatch_case_is_recorded(tmp_path):
    csv = _write_dataset(tmp_path, with_failure=False)
    p = tmp_path / "pred" / "case2_segmentation.nii.gz"
    img = sitk.ReadImage(str(p)); img.SetSpacing((1.0, 1.0, 2.0)); sitk.WriteImage(img, str(p))
    _, c = evaluate_dataset(tmp_path / "pred", csv, tmp_path / "m.csv", progress=False)
    assert list(c.status) == ["ok", "ok", "failed"] and "same grid" in c.error[2] and "spacing" in c.error[2]


@needs_real
def test_evaluate_dataset_with_landmarks_real(tmp_path):
    "verse004 as a one-case dataset; landmarks JSON = its _ctd.json with extra fields and one vertebra moved."
    src = REAL / "verse004_labels_only"
    shutil.copy(src / "sub-verse004_seg-vert_msk.nii.gz", tmp_path / "msk.nii.gz")
    shutil.copy(src / "sub-verse004_seg-subreg_ctd.json", tmp_path / "ctd.json")
    pd.DataFrame([dict(name="verse004", type="test", image_path="msk.nii.gz", mask_path="msk.nii.gz", centroid_json_path="ctd.json")]).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "pred").mkdir()
    shutil.copy(src / "sub-verse004_seg-vert_msk.nii.gz", tmp_path / "pred" / "verse004_segmentation.nii.gz")
    ctd = json.loads((src / "sub-verse004_seg-subreg_ctd.json").read_text(encoding="utf-8"))
    for d in ctd:
        if d.get("label") == 20: d["X"] += 10.0                   # 10 voxels along P (1 mm)
        if "label" in d: d["score"] = 0.9
    (tmp_path / "pred" / "verse004_landmarks.json").write_text(json.dumps(ctd))
    v, c = evaluate_dataset(tmp_path / "pred", tmp_path / "d.csv", tmp_path / "m.csv", progress=False)
    assert c.status[0] == "ok", c.error[0]
    assert c.id_rate[0] == 1.0 and c.id_rate_4mm[0] == pytest.approx(8 / 9) and c.dice_mean[0] == 1.0
    assert v.set_index("label").loc[20, "loc_dist"] == pytest.approx(10.0, abs=0.05)


def test_cli_exit_codes_and_help(tmp_path, capsys):
    csv = _write_dataset(tmp_path)
    assert evaluate_cli(["--pred", str(tmp_path / "pred"), "--csv", str(csv), "--out", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err  # messages go through logging, to stderr
    assert "evaluated 2/3 cases" in err and "FAILED case1" in err and "id_rate=" in err
    assert evaluate_cli(["--pred", str(tmp_path / "pred"), "--csv", str(csv), "--out", str(tmp_path / "m.csv"), "--quiet"]) == 1
    err = capsys.readouterr().err  # --quiet: the failure, not the summary
    assert "FAILED case1" in err and "evaluated" not in err
    assert evaluate_cli(["--pred", str(tmp_path / "pred"), "--csv", str(csv), "--out", str(tmp_path / "m.csv"), "--split", "train", "--quiet"]) == 0
    assert evaluate_cli(["--pred", str(tmp_path / "missing"), "--csv", str(csv)]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: evaluate_cli(["--help"])
    assert e.value.code == 0
    h = capsys.readouterr().out
    assert "spine-nb evaluate" in h and "--split" in h and "identification" in h


def test_console_script_help():
    exe = Path(sys.executable).with_name("spine-nb")
    if not exe.exists(): pytest.skip("spine-nb console script not installed in this environment")
    r = subprocess.run([str(exe), "evaluate", "--help"], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert r.returncode == 0 and "spine-nb evaluate" in r.stdout, r.stderr


def test_report_max_difference():
    "Runs last: prints the largest disagreement with MONAI seen in this session."
    if MAX_DIFF: print("max |ours - MONAI| overall:", max(MAX_DIFF.values()), MAX_DIFF)


def test_predicted_ctd_scores_with_verse_get_hits_as_written(tmp_path):
    "A predicted _ctd.json (PIR by default) is scored right by VerSe's get_hits against a truth file, with no reorienting, on a scan stored as ASL."
    from spine_nb.core import VERSE_NAMES
    from spine_nb.data.io import Centroids, read_ctd
    from spine_nb.data.phantom import make_phantom
    from spine_nb.inference.predictor import PredictionResult
    from spine_nb.inference.writers import _write_landmarks
    ph = make_phantom(3, fov=("T11", "L4"), spacing=(1.0, 1.0, 1.0), orientation="ASL")
    truth = Centroids.from_world(ph["centroids"], ph["image"], ("P", "I", "R"), decimals=2).points
    off = np.array([2.0, -1.5, 1.0])  # a near miss in world mm: every level is still a hit
    recs = [{"label": k, "name": VERSE_NAMES[k], "world": [float(x) for x in np.asarray(w) + off], "score": 1.0} for k, w in ph["centroids"].items()]
    res = PredictionResult(None, recs, np.zeros(3), {}, ph["image"])
    pred = read_ctd(_write_landmarks(res, tmp_path / "pred_ctd.json")).points
    hits = verse_get_hits(truth, pred)
    assert len(hits) == len(ph["centroids"]) >= 5 and all(hits.values()), hits
    raw = read_ctd(_write_landmarks(res, tmp_path / "input_ctd.json", "input")).points  # the image's own ASL axes
    assert not all(verse_get_hits(truth, raw).values()), "on the input's axes VerSe's code would score the same prediction wrong"
