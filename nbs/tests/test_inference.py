"""End-to-end tests of the inference layers and the Payer predictor: identification, the three-stage predictor on tiny random-weight checkpoints
(any input orientation gives the same world result), the output layout, batch behaviour and the CLI."""
import csv, json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
import SimpleITK as sitk
from conftest import ROOT

from spine_nb.core import LANDMARK_IDS
from spine_nb.anatomy import LANDMARK_ORDER, fit_sequence_model, identify, _prior_step
from spine_nb.methods.payer.predictor import FullPipelinePredictor, infer_cli, random_checkpoints, save_random_checkpoint
from spine_nb.training.checkpoint import CheckpointError
from spine_nb.inference.predictor import InputError
from spine_nb.inference.writers import is_complete, output_files
from spine_nb.data.io import reorient, read_ctd, write_ctd, Centroids, write_image

NORMAL = [l for l in LANDMARK_ORDER if l not in (25, 28)]


# --- identification ---------------------------------------------------------------------------------------------
def synth_spine(levels, rng, jitter=1.0):
    pts, p = {}, np.zeros(3)
    for i, l in enumerate(levels):
        if i: p = p + np.array([rng.normal(0, 1), 6 * np.sin(i / 4), -_prior_step(levels[i - 1], l) * rng.uniform(0.9, 1.1)])
        pts[l] = p + rng.normal(0, jitter, 3)
    return pts


def cands(pts, rng, score=0.9):
    return [{"label": l, "world": p, "score": score * rng.uniform(0.8, 1)} for l, p in pts.items()]


@pytest.fixture(scope="module")
def seq_model():
    rng = np.random.default_rng(1)
    sets = [synth_spine(NORMAL, rng) for _ in range(30)]
    sets += [synth_spine([l for l in LANDMARK_ORDER if l != 25], rng) for _ in range(2)]  # two with T13
    return fit_sequence_model(sets)


def labels(chain): return [c["label"] for c in chain]


@pytest.mark.parametrize("seed", range(5))
def test_identify_full_and_partial_fields_of_view(seq_model, seed):
    rng = np.random.default_rng(100 + seed); gt = synth_spine(NORMAL, rng)
    assert labels(identify(cands(gt, rng), seq_model)) == NORMAL
    for part in (range(1, 8), range(8, 20), range(20, 25), range(15, 23), range(3, 12)):
        assert labels(identify(cands({l: gt[l] for l in part}, rng), seq_model)) == list(part)


@pytest.mark.parametrize("variant", ["T13", "L6", "T13+L6"])
def test_identify_transitional_vertebrae(seq_model, variant):
    rng = np.random.default_rng(7)
    levels = [l for l in LANDMARK_ORDER if not (l == 28 and "T13" not in variant) and not (l == 25 and "L6" not in variant)]
    gt = synth_spine(levels, rng)
    assert labels(identify(cands(gt, rng), seq_model)) == levels
    lumbar = [l for l in levels if l >= 19]  # lower thoracic + lumbar only
    assert labels(identify(cands({l: gt[l] for l in lumbar}, rng), seq_model)) == lumbar


@pytest.mark.parametrize("seed", range(4))
def test_identify_missing_and_spurious(seq_model, seed):
    rng = np.random.default_rng(200 + seed); gt = synth_spine(NORMAL, rng)
    miss = int(rng.choice(NORMAL[2:-2]))
    c = cands({l: p for l, p in gt.items() if l != miss}, rng)
    c += [{"label": int(rng.choice(LANDMARK_IDS)), "world": gt[int(rng.choice(NORMAL))] + rng.uniform(30, 60, 3) * rng.choice([-1, 1], 3), "score": 0.5}
          for _ in range(3)]  # off the spine
    c += [{"label": 21, "world": gt[5], "score": 0.4}]  # a lumbar channel firing in the neck
    c += [{"label": 22, "world": gt[22] + [0, 0, -8], "score": 0.3}]  # a weaker second maximum
    chain = identify(c, seq_model)
    assert labels(chain) == [l for l in NORMAL if l != miss]
    np.testing.assert_allclose([x["world"] for x in chain], [gt[l] for l in NORMAL if l != miss])


@pytest.mark.parametrize("true,wrong", [(22, 21), (22, 23), (10, 11), (3, 2), (20, 19)])
def test_identify_corrects_a_maximum_in_the_wrong_channel(seq_model, true, wrong):
    rng = np.random.default_rng(true); gt = synth_spine(NORMAL, rng); c = cands(gt, rng)
    c[NORMAL.index(true)]["label"] = wrong
    chain = identify(c, seq_model)
    assert labels(chain) == NORMAL
    assert chain[NORMAL.index(true)]["channel_label"] == wrong


def test_identify_shift_corrected_in_partial_view(seq_model):
    rng = np.random.default_rng(3); gt = synth_spine(NORMAL, rng)
    c = cands({l: gt[l] for l in range(18, 25)}, rng); c[2]["label"] = 21  # L1 maximum in the L2 channel
    assert labels(identify(c, seq_model)) == list(range(18, 25))


def test_identify_with_all_channel_scores(seq_model):
    "A candidate carrying the 27 channel values takes the label whose channel is high there."
    rng = np.random.default_rng(4); gt = synth_spine(NORMAL, rng); c = cands(gt, rng)
    scores = np.zeros(len(LANDMARK_IDS)); scores[LANDMARK_IDS.index(22)] = 0.7
    c[NORMAL.index(22)].update(label=21, scores=scores)
    chain = identify(c, seq_model)
    assert labels(chain) == NORMAL and chain[NORMAL.index(22)]["score"] == pytest.approx(0.7)


def test_stage2_postprocessing_on_synthetic_heatmaps(seq_model):
    "heatmap_candidates + identify on 27 Gaussian heatmaps: a peak in the wrong channel, a second peak, a spurious blob."
    from spine_nb.data.geometry import Grid
    from spine_nb.methods.payer.predictor import heatmap_candidates
    from spine_nb.transforms import gaussian_volume
    rng = np.random.default_rng(5); gt = synth_spine(NORMAL, rng)
    lumbar = {l: gt[l] for l in range(17, 25)}  # T10-L5
    c0 = np.mean(list(lumbar.values()), 0)
    grid = Grid(c0 - np.array([60.0, 60.0, 180.0]), np.full(3, 3.0), np.eye(3), (40, 40, 120))
    heat = np.zeros((len(LANDMARK_IDS), *grid.size), np.float32)
    def add(ch, world, amp=1.0):
        heat[ch] = np.maximum(heat[ch], amp * gaussian_volume(grid.size, grid.world_to_index(world), 2.0)[0])
    for l, p in lumbar.items(): add(LANDMARK_IDS.index(l), p, rng.uniform(0.7, 1.0))
    heat[LANDMARK_IDS.index(22)] = 0; add(LANDMARK_IDS.index(21), lumbar[22], 0.9)  # L3 shows up in the L2 channel
    add(LANDMARK_IDS.index(23), lumbar[22], 0.3)  # a weak L4 echo on L3
    add(LANDMARK_IDS.index(4), c0 + [45, 40, 0], 0.6)  # a spurious C4 blob beside the spine
    cands = heatmap_candidates(heat, grid, grid, min_value=0.2, border_mm=5)
    chain = identify(cands, seq_model)
    assert labels(chain) == list(range(17, 25))
    np.testing.assert_allclose([c["world"] for c in chain], [lumbar[l] for l in range(17, 25)], atol=3.0)
    # the same with the lowest vertebra on the image border: it is dropped, the rest keep their labels
    cut = Grid(grid.origin + [0, 0, lumbar[24][2] - grid.origin[2] - 3], grid.spacing, grid.direction, grid.size)
    chain = identify(heatmap_candidates(heat, grid, cut, min_value=0.2, border_mm=5), seq_model)
    assert labels(chain) == list(range(17, 24))


def test_sequence_model_from_dataset_csv(tmp_path):
    from spine_nb.anatomy import sequence_model_from_dataset, SequenceModel
    rng = np.random.default_rng(9); rows = ["name,type,image_path,mask_path,centroid_json_path"]; sets = []
    for i in range(3):
        im = sitk.Image([8, 8, 8], sitk.sitkInt16); im.SetSpacing((2.0, 2.0, 3.0)); im.SetOrigin((5.0 * i, 0, 0))
        write_image(reorient(im, "PIR"), tmp_path / f"c{i}.nii.gz")
        pts = synth_spine(NORMAL, rng); sets.append(pts)
        write_ctd(Centroids.from_world(pts, reorient(im, "PIR"), axcodes=("P", "I", "R")), tmp_path / f"c{i}_ctd.json")
        rows.append(f"c{i},train,c{i}.nii.gz,,c{i}_ctd.json")
    rows.append("t,test,c0.nii.gz,,")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    m = sequence_model_from_dataset(tmp_path / "d.csv"); ref = fit_sequence_model(sets)
    assert set(m.mean) == set(ref.mean)
    for k in ref.mean: np.testing.assert_allclose(m.mean[k], ref.mean[k], atol=1e-6)
    m.save(tmp_path / "seq.json"); np.testing.assert_allclose(SequenceModel.load(tmp_path / "seq.json").sd[(20, 21)], ref.sd[(20, 21)])


# --- predictor on a phantom ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    "Tiny random-weight checkpoints (training layout) with output layers scaled up so heatmaps depend on the image."
    return random_checkpoints(tmp_path_factory.mktemp("models"), "tiny", folds=(0, 1), head_std=1.0)


@pytest.fixture(scope="module")
def phantom():
    from spine_nb.data.phantom import make_phantom
    return make_phantom(3, "ct", fov="lumbar", spacing=(2.5, 2.5, 2.5), fov_mm=(160, 160), artefacts=False)


@pytest.fixture(scope="module")
def predictor(models):
    # random networks peak anywhere, also outside the scan: keep every maximum so identification and stage 3 have work
    return FullPipelinePredictor.from_model_dir(models, folds=(0,), device="cpu", candidate_params={"border_mm": -1e6})


def _same_grid(a, b):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def _oblique(image, deg=12.0, axis=(1.0, 0.4, 0.2)):
    "`image` resampled (linear) onto a rotated grid of the same spacing covering it."
    ax = np.asarray(axis) / np.linalg.norm(axis); a = np.deg2rad(deg)
    K = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    R = np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K
    D = R @ np.asarray(image.GetDirection()).reshape(3, 3)
    n = np.asarray(image.GetSize()) - 1
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint([float(i * n[0]), float(j * n[1]), float(k * n[2])])
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    u = corners @ D; sp = np.asarray(image.GetSpacing())
    size = np.ceil((u.max(0) - u.min(0)) / sp).astype(int) + 1
    return sitk.Resample(image, size.tolist(), sitk.Transform(), sitk.sitkLinear, (D @ u.min(0)).tolist(), sp.tolist(),
                         D.flatten().tolist(), -1000.0, image.GetPixelID())


@pytest.mark.parametrize("code", ["RAS", "PIR", "LPS"])
def test_reoriented_input_gives_same_world_result(predictor, phantom, code):
    img = phantom["image"]; ref = predictor.predict(img)
    assert ref.landmarks, "random networks should give some candidates"
    r = predictor.predict(reorient(img, code))
    _same_grid(r.segmentation, reorient(img, code))
    assert [l["label"] for l in r.landmarks] == [l["label"] for l in ref.landmarks]
    np.testing.assert_allclose([l["world"] for l in r.landmarks], [l["world"] for l in ref.landmarks], atol=1e-3)
    np.testing.assert_allclose(r.spine_centroid, ref.spine_centroid, atol=1e-3)
    back = sitk.Resample(r.segmentation, img, sitk.Transform(), sitk.sitkNearestNeighbor)
    assert (sitk.GetArrayViewFromImage(back) == sitk.GetArrayViewFromImage(ref.segmentation)).mean() > 0.999
    for l in r.landmarks:  # voxel indices refer to the reoriented input's grid
        np.testing.assert_allclose(r.segmentation.TransformContinuousIndexToPhysicalPoint(l["voxel"]), l["world"], atol=1e-3)


class BoneNearLandmark(torch.nn.Module):
    "A stand-in stage-3 'network' with a known answer: bone (> 200 HU) within ~11 mm of the target landmark."
    stage, multiple = "segmentation", 1
    def forward(self, x): return 20 * torch.minimum(x[:, :1] + 0.04, x[:, 1:] - 0.05)


def _dice(a, b, lab): return 2 * ((a == lab) & (b == lab)).sum() / max((a == lab).sum() + (b == lab).sum(), 1)


def test_oblique_input(models, phantom):
    p = FullPipelinePredictor.from_model_dir(models, device="cpu", candidate_params={"border_mm": -1e6})
    p.models["segmentation"].nets = [BoneNearLandmark()]
    img = phantom["image"]; obl = _oblique(img)
    ctd = {k: v for k, v in phantom["centroids"].items() if k in LANDMARK_IDS}
    ref = p.predict(img, landmarks=ctd); r = p.predict(obl, landmarks=ctd)
    _same_grid(r.segmentation, obl)
    np.testing.assert_allclose([l["world"] for l in r.landmarks], [l["world"] for l in ref.landmarks], atol=1e-6)
    a = sitk.GetArrayViewFromImage(ref.segmentation)
    b = sitk.GetArrayFromImage(sitk.Resample(r.segmentation, img, sitk.Transform(), sitk.sitkNearestNeighbor))
    inside = {k for k in ctd if (a == k).sum() > 50}
    assert len(inside) >= 3, "the stand-in network should segment bone around each landmark"
    # small structures (~100-250 voxels) resampled twice at 2.5-3 mm: boundaries differ, positions must not
    dice = {k: _dice(a, b, k) for k in inside}
    assert np.mean(list(dice.values())) > 0.6 and min(dice.values()) > 0.4, dice
    from spine_nb.data.io import centroids_from_mask
    c_ref, c_obl = centroids_from_mask(ref.segmentation), centroids_from_mask(r.segmentation)
    for k in inside:
        assert np.linalg.norm(c_obl[k] - c_ref[k]) < 5, (k, c_obl[k], c_ref[k])  # same place (2 voxels) in world space
        assert np.linalg.norm(c_obl[k] - ctd[k]) < 12, (k, c_obl[k], ctd[k])  # around its own landmark
    full = p.predict(obl); _same_grid(full.segmentation, obl)  # the whole pipeline on the oblique grid


def test_long_scan_is_covered_by_stage2_windows(predictor):
    "Stage 2 covers the whole length of a scan much longer than its training patch."
    img = sitk.Image([30, 30, 400], sitk.sitkInt16) - 1000; img.SetSpacing((4.0, 4.0, 2.0))
    img = sitk.Paste(img, sitk.Image([6, 6, 380], sitk.sitkInt16) + 700, [6, 6, 380], [0, 0, 0], [12, 12, 10])
    r = predictor.predict(img)
    patch_mm = predictor.models["vertebrae"].config["image_size"][2] * predictor.models["vertebrae"].config["spacing"][2]
    z_mm = r.vertebra_grid.size[2] * r.vertebra_grid.spacing[2]
    assert z_mm >= 798 - 6 > 3 * patch_mm
    assert np.abs(r.vertebra_heatmaps[..., -5:]).max() > 0  # the far end got network output, not padding


def test_ensemble_of_folds(models, phantom):
    p = FullPipelinePredictor.from_model_dir(models, folds=(0, 1), device="cpu")
    assert all(len(v) == 2 for v in p.checkpoints().values())
    r = p.predict(phantom["image"]); assert r.segmentation.GetSize() == phantom["image"].GetSize()


# --- outputs -------------------------------------------------------------------------------------------------
def test_outputs_layout_and_atomicity(predictor, phantom, tmp_path):
    img = reorient(phantom["image"], "PIR")
    r = predictor.predict(img, output_dir=tmp_path, save_intermediates=True, case="c1")
    f = output_files(tmp_path, "c1")
    for k in ("segmentation", "landmarks", "spine_centroid", "metadata", "qc"): assert f[k].is_file(), k
    assert is_complete(tmp_path, "c1")
    seg = sitk.ReadImage(str(f["segmentation"])); _same_grid(seg, img)
    assert (sitk.GetArrayViewFromImage(seg) == sitk.GetArrayViewFromImage(r.segmentation)).all()
    ctd = read_ctd(f["landmarks"]); assert ctd.axcodes == ("P", "I", "R")
    world = ctd.to_world(img); header = json.loads(f["landmarks"].read_text(encoding="utf-8"))[0]
    for l in r.landmarks:
        np.testing.assert_allclose(world[l["label"]], l["world"], atol=0.05)
        np.testing.assert_allclose(header["world_lps_mm"][str(l["label"])], l["world"])
        assert header["scores"][str(l["label"])] == pytest.approx(l["score"])
    meta = json.loads(f["metadata"].read_text(encoding="utf-8"))
    assert meta["status"] == "ok" and meta["input"]["orientation"] == "PIR" and meta["input"]["size"] == list(img.GetSize())
    assert set(meta["timings_s"]) >= {"read", "spine", "vertebrae", "segmentation", "write", "total"} and meta["peak_ram_mb"] > 0
    assert set(meta["checkpoints"]) == {"spine", "vertebrae", "segmentation"} and "torch" in meta["versions"]
    inter = tmp_path / "intermediates" / "c1"
    assert (inter / "spine_heatmap.nii.gz").is_file()
    assert sorted(p.name for p in inter.glob("*_heatmap.nii.gz") if p.name != "spine_heatmap.nii.gz") == sorted(f"{l['name']}_heatmap.nii.gz" for l in r.landmarks)
    _same_grid(sitk.ReadImage(str(inter / "spine_heatmap.nii.gz")), img)
    assert not [p for p in tmp_path.rglob(".*")], "temporary files left behind"
    assert f["metadata"].stat().st_mtime_ns >= max(f[k].stat().st_mtime_ns for k in ("segmentation", "landmarks", "spine_centroid"))


def test_precomputed_landmarks_file(predictor, phantom, tmp_path):
    img = phantom["image"]; ctd = {k: v for k, v in phantom["centroids"].items() if k in LANDMARK_IDS}
    path = write_ctd(Centroids.from_world(ctd, img, axcodes=("P", "I", "R")), tmp_path / "x_ctd.json")
    r = predictor.predict(img, landmarks=path)
    assert [l["label"] for l in r.landmarks] == sorted(ctd, key=LANDMARK_ORDER.index) and r.timings["spine"] == 0
    assert set(np.unique(sitk.GetArrayViewFromImage(r.segmentation))) <= {0, *ctd}
    far = {k: np.asarray(v) + [0, 0, 900] for k, v in ctd.items()}
    bad = write_ctd(Centroids.from_world(far, img, axcodes=("P", "I", "R")), tmp_path / "other_ctd.json")
    with pytest.raises(InputError, match="other_ctd.json does not fit the image"): predictor.predict(img, landmarks=bad)


# --- errors ---------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_one_clear_error(predictor, tmp_path):
    mr = sitk.Image([20, 20, 20], sitk.sitkFloat32) + 0.5; mr[3, 3, 3] = 1.0
    p = write_image(mr, tmp_path / "mr.nii.gz")
    with pytest.raises(InputError, match="mr.nii.gz does not look like a CT"): predictor.predict(p)
    with pytest.raises(InputError, match="empty"): predictor.predict(write_image(sitk.Image([20, 20, 20], sitk.sitkInt16), tmp_path / "e.nii.gz"))
    flat = sitk.Image([30, 30, 1], sitk.sitkInt16) - 1000; flat[2, 2, 0] = 500
    with pytest.raises(InputError, match="2D"): predictor.predict(flat)


def test_missing_and_mismatched_checkpoints(models, tmp_path):
    with pytest.raises(CheckpointError, match="missing spine checkpoint"): FullPipelinePredictor.from_model_dir(tmp_path)
    with pytest.raises(CheckpointError, match="fold_3"): FullPipelinePredictor.from_model_dir(models, folds=(3,))
    ck = {s: models / "payer" / s / "checkpoints" / "fold_0" / "best.pth" for s in ("spine", "vertebrae", "segmentation")}
    with pytest.raises(CheckpointError, match="is a 'spine' checkpoint"): FullPipelinePredictor(ck["spine"], ck["spine"], ck["segmentation"], "cpu")
    other = save_random_checkpoint(tmp_path / "seg_cpu.pth", "segmentation", "cpu")  # different patch size/spacing
    with pytest.raises(CheckpointError, match="disagree"): FullPipelinePredictor(ck["spine"], ck["vertebrae"], [ck["segmentation"], other], "cpu")


# --- batch and CLI -------------------------------------------------------------------------------------------
def _rows(out): return list(csv.DictReader(open(out / "summary.csv")))


def test_batch_skip_rerun_and_failures(models, phantom, tmp_path):
    d = tmp_path / "in"; d.mkdir()
    write_image(phantom["image"], d / "a_ct.nii.gz"); write_image(reorient(phantom["image"], "RAS"), d / "b_ct.nii.gz")
    write_image(sitk.Image([16, 16, 16], sitk.sitkInt16), d / "blank.nii.gz")
    (d / "broken.nii.gz").write_bytes(b"not an image")
    out = tmp_path / "out"
    args = ["--image", str(d), "--model_dir", str(models), "--output", str(out), "--device", "cpu", "--quiet", "--no_qc"]
    assert infer_cli(args) == 1
    rows = {r["case"]: r for r in _rows(out)}
    assert {k: r["status"] for k, r in rows.items()} == {"a_ct": "ok", "b_ct": "ok", "blank": "failed", "broken": "failed"}
    assert "blank.nii.gz is empty" in rows["blank"]["error"] and "broken.nii.gz" in rows["broken"]["error"]
    meta = json.loads((out / "blank_metadata.json").read_text(encoding="utf-8")); assert meta["status"] == "failed" and "empty" in meta["error"]
    assert rows["a_ct"]["levels"] == rows["b_ct"]["levels"]
    mtime = (out / "a_ct_segmentation.nii.gz").stat().st_mtime_ns
    assert infer_cli(args) == 1
    assert {r["case"]: r["status"] for r in _rows(out)} == {"a_ct": "skipped", "b_ct": "skipped", "blank": "failed", "broken": "failed"}
    assert (out / "a_ct_segmentation.nii.gz").stat().st_mtime_ns == mtime
    (d / "blank.nii.gz").unlink(); (d / "broken.nii.gz").unlink()
    assert infer_cli(args + ["--overwrite"]) == 0
    assert (out / "a_ct_segmentation.nii.gz").stat().st_mtime_ns > mtime


def test_cli_missing_checkpoint_fails_each_case(phantom, tmp_path):
    img = write_image(phantom["image"], tmp_path / "x_ct.nii.gz")
    assert infer_cli(["--image", str(img), "--model_dir", str(tmp_path / "nothing"), "--output", str(tmp_path / "o"), "--quiet"]) == 1
    r = _rows(tmp_path / "o")[0]; assert r["status"] == "failed" and "missing spine checkpoint" in r["error"]


def test_cli_landmarks_and_csv(models, phantom, tmp_path):
    img = write_image(phantom["image"], tmp_path / "x_ct.nii.gz")
    ctd = {k: v for k, v in phantom["centroids"].items() if k in LANDMARK_IDS}
    lm = write_ctd(Centroids.from_world(ctd, phantom["image"]), tmp_path / "x_ctd.json")
    out = tmp_path / "o"
    assert infer_cli(["--image", str(img), "--landmarks", str(lm), "--model_dir", str(models), "--output", str(out), "--quiet", "--no_qc"]) == 0
    meta = json.loads((out / "x_ct_metadata.json").read_text(encoding="utf-8"))
    assert meta["landmarks_source"] == str(lm) and meta["n_vertebrae"] == len(ctd)
    fit_sequence_model([ctd]).save(tmp_path / "seq.json")  # identification statistics from a JSON file
    assert infer_cli(["--image", str(img), "--sequence_model", str(tmp_path / "seq.json"), "--model_dir", str(models),
                      "--output", str(tmp_path / "o4"), "--quiet", "--no_qc"]) == 0
    assert json.loads((tmp_path / "o4" / "x_ct_metadata.json").read_text(encoding="utf-8"))["parameters"]["sequence_model_pairs"] == len(ctd) - 1
    (tmp_path / "d.csv").write_text(f"name,type,image_path,mask_path,centroid_json_path\ncaseA,test,{img.name},,\n")
    assert infer_cli(["--image", str(tmp_path / "d.csv"), "--model_dir", str(models), "--output", str(tmp_path / "o2"), "--quiet", "--no_qc"]) == 0
    assert (tmp_path / "o2" / "caseA_segmentation.nii.gz").is_file()
    assert infer_cli(["--image", str(tmp_path / "nope.nii.gz"), "--output", str(tmp_path / "o3")]) == 2


@pytest.mark.parametrize("mod", ["infer", "bench"])
def test_commands_have_help(mod):
    r = subprocess.run([sys.executable, "-m", f"spine_nb.{mod}", "--help"], capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"spine-nb {mod}" in r.stdout and "--model_dir" in r.stdout


def test_bench_small(tmp_path):
    "`spine-nb bench` prints one JSON line with stage timings and peak memory (a small phantom here)."
    r = subprocess.run([sys.executable, "-m", "spine_nb.bench", "--preset", "tiny", "--device", "cpu", "--size", "96,96,120",
                        "--spacing", "2.5,2.5,2.5", "--phantom", str(tmp_path / "ph.nii.gz")], capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    out = json.loads(lines[-1])
    assert set(out["timings_s"]) >= {"read", "spine", "vertebrae", "segmentation", "total"} and out["peak_ram_mb"] > 0
    assert out["vertebrae_segmented"] >= 1


def test_refine_with_masks_on_real_verse_vertebrae(real_data):
    "On verse004 (T9-L5), landmarks 5 mm off along the spine return to within 2 mm of the body centroids; across unchanged."
    from spine_nb.methods.payer.predictor import refine_with_masks
    from spine_nb.data.io import read_image
    d = real_data / "verse004_labels_only"
    mask = read_image(d / "sub-verse004_seg-vert_msk.nii.gz")
    ctd = read_ctd(d / "sub-verse004_seg-subreg_ctd.json").to_world(mask)
    labs = sorted((l for l in ctd if l in LANDMARK_IDS), key=lambda l: -ctd[l][2])  # cranial -> caudal (LPS z up)
    pts = np.array([ctd[l] for l in labs])
    t = np.gradient(pts, axis=0); t /= np.linalg.norm(t, axis=1, keepdims=True)
    off = pts + 5.0 * t
    out = refine_with_masks([{"label": l, "world": p.tolist()} for l, p in zip(labs, off)], mask)
    new = np.array([o["world"] for o in out])
    along = np.einsum("ij,ij->i", new - pts, t)
    assert len(labs) == 9 and np.abs(along).max() < 2.0, along
    np.testing.assert_allclose(np.linalg.norm((new - off) - np.einsum("ij,ij->i", new - off, t)[:, None] * t, axis=1), 0, atol=0.5)


def test_dicom_seg_output_for_a_dicom_input(models, phantom, tmp_path):
    "--dicom_seg: a DICOM-SEG next to the outputs, read back by highdicom onto the prediction's voxels; a NIfTI input is refused up front."
    pytest.importorskip("highdicom", reason="highdicom is not installed (pip install highdicom)")
    from spine_nb.data.io import write_dicom_series
    from spine_nb.inference.dicomseg import read_dicom_seg
    dcm = tmp_path / "series"; write_dicom_series(phantom["image"], dcm)
    p = FullPipelinePredictor.from_model_dir(models, folds=(0,), device="cpu", candidate_params={"border_mm": -1e6}, dicom_seg=True)
    r = p.predict(dcm, output_dir=tmp_path / "out", case="d", landmarks=phantom["centroids"], qc=False)
    f = output_files(tmp_path / "out", "d"); assert is_complete(tmp_path / "out", "d") and f["dicom_seg"].is_file()
    back = sitk.GetArrayFromImage(read_dicom_seg(f["dicom_seg"], dcm))
    np.testing.assert_array_equal(back, sitk.GetArrayFromImage(r.segmentation))
    nii = tmp_path / "a.nii.gz"; write_image(phantom["image"], nii)
    assert infer_cli(["--image", str(nii), "--model_dir", str(models), "--output", str(tmp_path / "o2"), "--dicom_seg", "--quiet"]) == 2
