"""spine_nb.data.io end to end: real scans (DICOM, VerSe centroids, PIR/RAS reorientation), bad input, the CLIs."""
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import ROOT
from spine_nb.core import verse_id
from spine_nb.data.io import (SpineIOError, DicomSeriesError, CentroidFileError, DatasetError, MissingPathError, Centroids,
                              read_image, write_image, read_dicom_series, list_dicom_series, write_dicom_series,
                              orientation_code, reorient, resample_to_spacing, resample_like, read_ctd, write_ctd,
                              centroids_from_mask, world_to_voxel, read_dataset_csv, write_dataset_csv, validate_dataset,
                              discover_verse_bids, kfold_splits, fold_split, convert_dicom_cli, info_cli)

PY = sys.executable


def grid(im): return im.GetSize(), im.GetOrigin(), im.GetSpacing(), im.GetDirection()


def identical(a, b): return grid(a) == grid(b) and a.GetPixelID() == b.GetPixelID() and np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


def run_py(code: str, *args):
    return subprocess.run([PY, "-c", code, *map(str, args)], capture_output=True, text=True, encoding="utf-8", cwd=ROOT)


# ---------------------------------------------------------------- real data
def test_dicom_series_matches_segmentation_geometry_and_bone_hu(real_data):
    "The JPEG 2000 CT series converts to the world grid of example_seg_dicom.nii.gz; T11/T12 are bone-like."
    ct = read_image(real_data / "totalseg_ct_dicom" / "example_ct_dicom")
    seg = read_image(real_data / "totalseg_ct_dicom" / "example_seg_dicom.nii.gz")
    assert (orientation_code(ct), orientation_code(seg)) == ("LPS", "LAS")
    ct_las = reorient(ct, orientation_code(seg))
    assert ct_las.GetSize() == seg.GetSize() == (512, 512, 20)
    assert ct_las.GetSpacing() == seg.GetSpacing() and ct_las.GetDirection() == seg.GetDirection()
    np.testing.assert_allclose(ct_las.GetOrigin(), seg.GetOrigin(), atol=1e-4)
    # the same check by world coordinates: resampling the CT onto the segmentation grid changes nothing
    same = resample_like(ct, seg, interpolator="nearest")
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(same), sitk.GetArrayViewFromImage(ct_las))
    a, s = sitk.GetArrayFromImage(ct_las), sitk.GetArrayFromImage(seg)
    per_level = {l: float(a[s == l].mean()) for l in (32, 33)}
    both = float(a[np.isin(s, [32, 33])].mean())
    print(f"mean HU: T12 {per_level[32]:.1f}, T11 {per_level[33]:.1f}, both {both:.1f}")
    assert 260 < both < 300 and all(240 < v < 320 for v in per_level.values())


def test_bundled_dicom_sample_is_the_shared_one(real_data):
    bundled = read_image(ROOT / "data" / "samples" / "totalseg_ct_dicom" / "example_ct_dicom")
    assert identical(bundled, read_image(real_data / "totalseg_ct_dicom" / "example_ct_dicom"))


def test_verse_ctd_roundtrip_and_body_offset(real_data, tmp_path):
    "verse004 centroids write back byte for byte and sit ~12 mm anterior of the whole-vertebra centres of mass."
    d = real_data / "verse004_labels_only"
    f = d / "sub-verse004_seg-subreg_ctd.json"
    ctd = read_ctd(f)
    assert ctd.axcodes == ("P", "I", "R") and list(ctd.points) == list(range(16, 25))
    assert write_ctd(ctd, tmp_path / "x_ctd.json").read_bytes() == f.read_bytes()
    mask = read_image(d / "sub-verse004_seg-vert_msk.nii.gz")
    com, ctd_world = centroids_from_mask(mask), ctd.to_world(mask)
    assert list(com) == list(ctd_world)
    dist = np.array([np.linalg.norm(com[k] - ctd_world[k]) for k in com])
    print(f"ctd (body) vs mask centre of mass: mean {dist.mean():.2f} mm, max {dist.max():.2f} mm, min {dist.min():.2f} mm")
    # measured: mean 11.74, max 14.93, min 9.46 mm (the posterior arch pulls the whole-vertebra centre backwards)
    assert 9 < dist.mean() < 15 and dist.max() < 17 and dist.min() > 7
    # the offset is anterior: in PIR voxels the first axis points posterior, so the body centroid has smaller X
    com_pir = world_to_voxel(np.array(list(com.values())), mask, "PIR")
    assert all(ctd.points[k][0] < com_pir[i][0] - 7 for i, k in enumerate(com))
    # world -> voxel -> world in another orientation agrees with the file
    back = ctd.to_axcodes(mask, "RAS").to_axcodes(mask, "PIR")
    np.testing.assert_allclose(np.array(list(back.points.values())), np.array(list(ctd.points.values())), atol=1e-9)


@pytest.mark.parametrize("name", ["sub-gl003", "sub-gl017"])
def test_body_centres_follow_verse_centroids(real_data, name):
    "On real expert C1-T5 maps, `anatomy.body_centres` lands on VerSe's centroids: C1 (no body) at its centre of mass, the others at their bodies."
    from spine_nb.anatomy import body_centres
    from spine_nb.data.geometry import Grid
    d = real_data / "anatomy" / name
    mask = read_image(next(d.glob("*_msk.nii.gz"))); ctd = read_ctd(next(d.glob("*_ctd.json"))).to_world(mask); g = Grid.of(mask)
    a = np.rint(sitk.GetArrayFromImage(mask)).astype(np.int64).transpose(2, 1, 0)
    cen = body_centres(a, g.spacing, [1, 2, 3, 4, 5], superior=g.superior)
    dist = {v: float(np.linalg.norm(g.index_to_world(np.asarray(c)[None])[0] - ctd[v])) for v, c in cen.items()}
    # measured: C1 0.0 mm (19-20 mm at the atlas's thickest part, before C1 was special), C2-C5 0.6-1.6 mm
    assert dist[1] < 1.0 and max(dist[v] for v in (2, 3, 4, 5)) < 4.0, dist


@pytest.mark.parametrize("rel", ["tptbox_ct/sub-ct_label-22_ct.nii.gz", "tptbox_ct/sub-ct_seg-vert_label-22_msk.nii.gz",
                                 "totalseg_ct/example_ct.nii.gz", "verse004_labels_only/sub-verse004_seg-vert_msk.nii.gz"])
def test_reorientation_round_trips_are_exact(real_data, rel):
    "PIR (TPTBox), RAS (TotalSegmentator) and oblique PIR (VerSe) images survive RAS/LPS/PIR round trips bit for bit."
    im = read_image(real_data / rel)
    code = orientation_code(im)
    assert code == ("RAS" if "totalseg" in rel else "PIR")
    for target in ("RAS", "LPS", "PIR", "ILA"):
        r = reorient(im, target)
        assert orientation_code(r) == target
        assert identical(reorient(r, code), im), target
    assert identical(reorient(reorient(reorient(im, "RAS"), "LPS"), code), im)


def test_geometry_kept_by_every_format(real_data, tmp_path):
    "The oblique VerSe mask keeps its exact geometry through MHA/MHD, to 1e-12 through NRRD (it stores spacing × direction) and float32 precision through NIfTI."
    im = read_image(real_data / "verse004_labels_only" / "sub-verse004_seg-vert_msk.nii.gz")
    im = sitk.Cast(im, sitk.sitkUInt8)
    for suffix in (".mha", ".mhd"):
        assert identical(read_image(write_image(im, tmp_path / f"m{suffix}")), im), suffix
    n = read_image(write_image(im, tmp_path / "m.nrrd"))
    assert n.GetSize() == im.GetSize() and n.GetOrigin() == im.GetOrigin()
    np.testing.assert_allclose(n.GetSpacing(), im.GetSpacing(), atol=1e-12); np.testing.assert_allclose(n.GetDirection(), im.GetDirection(), atol=1e-12)
    back = read_image(write_image(im, tmp_path / "m.nii.gz"))
    np.testing.assert_allclose(back.GetOrigin(), im.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), im.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(im))
    # reorient metadata never reaches the files
    write_image(reorient(im, "RAS"), tmp_path / "r.mha")
    assert b"spine_nb_reorient" not in (tmp_path / "r.mha").read_bytes()[:4000]


def test_resampling_real_mask_is_label_safe(real_data):
    seg = read_image(real_data / "tptbox_ct" / "sub-ct_seg-vert_label-22_msk.nii.gz")
    lo = resample_to_spacing(seg, 3.0, is_label=True)
    assert lo.GetSpacing() == (3.0, 3.0, 3.0) and lo.GetPixelID() == seg.GetPixelID()
    assert set(np.unique(sitk.GetArrayViewFromImage(lo))) <= set(np.unique(sitk.GetArrayViewFromImage(seg)))
    c0, c1 = centroids_from_mask(seg), centroids_from_mask(lo)
    assert max(np.linalg.norm(c0[k] - c1[k]) for k in c1) < 1.5  # centroids move less than a voxel
    ct = read_image(real_data / "tptbox_ct" / "sub-ct_label-22_ct.nii.gz")
    b = resample_to_spacing(ct, 1.0, interpolator="bspline", keep_extent=True)
    assert b.GetPixelID() == sitk.sitkFloat32 and b.GetSize() == tuple(int(round(s * 1.5)) for s in ct.GetSize())


# ---------------------------------------------------------------- synthetic DICOM series
@pytest.fixture
def vol():
    v = sitk.GetImageFromArray((np.arange(7 * 12 * 16) % 500).astype(np.int16).reshape(7, 12, 16))
    v.SetSpacing((0.75, 0.75, 3.0)); v.SetOrigin((-20.0, 15.0, -400.0))
    return v


def test_synthetic_dicom_round_trip(vol, tmp_path):
    write_dicom_series(vol, tmp_path / "s", description="axial 3mm")
    back = read_dicom_series(tmp_path / "s")
    assert back.GetSize() == vol.GetSize() and np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(vol))
    np.testing.assert_allclose(back.GetOrigin(), vol.GetOrigin(), atol=1e-4); np.testing.assert_allclose(back.GetSpacing(), vol.GetSpacing(), atol=1e-4)


@pytest.mark.parametrize("kind,kw,msg", [
    ("gap", dict(skip=[2, 3]), "misses 2 slice(s)"),
    ("uneven", dict(slice_tags=lambda k: {"0020|0032": f"-20\\15\\{-400 + 3.0 * k + (1.1 if k > 3 else 0)}"}), "non-uniform slice spacing"),
    ("mixed", dict(slice_tags=lambda k: {"0020|0037": "0\\1\\0\\0\\0\\-1"} if k == 0 else {}), "mixes 2 slice orientations"),
    ("duplicate", dict(slice_tags=lambda k: {"0020|0032": "-20\\15\\-400"} if k == 1 else {}), "repeated slice position"),
])
def test_defective_dicom_series_are_reported(vol, tmp_path, kind, kw, msg):
    folder = tmp_path / kind
    write_dicom_series(vol, folder, description=f"{kind} series", **kw)
    with pytest.raises(DicomSeriesError) as e: read_image(folder)
    assert msg in str(e.value) and str(folder) in str(e.value) and f"{kind} series" in str(e.value)
    r = run_py("import sys; from spine_nb.data.io import convert_dicom_cli; sys.exit(convert_dicom_cli(sys.argv[1:]))", folder, tmp_path / "o.nii.gz")
    assert r.returncode == 1 and r.stderr.startswith("spine-nb convert-dicom: error:") and msg in r.stderr and "Traceback" not in r.stderr
    if kind in ("gap", "uneven"):  # --force reads it onto a regular grid anyway
        assert convert_dicom_cli([str(folder), str(tmp_path / "o.nii.gz"), "--force"]) == 0


def test_folder_with_several_series(vol, tmp_path, capsys):
    folder = tmp_path / "two"
    write_dicom_series(vol, folder / "a", description="Body 3.0 mm")
    write_dicom_series(vol[:, :, :3], folder / "b", description="Scout", series_uid="1.2.3.4.5")
    for f in [*(folder / "a").iterdir(), *(folder / "b").iterdir()]: f.rename(folder / f"{f.parent.name}_{f.name}")
    found = list_dicom_series(folder)
    assert [s["description"] for s in found] == ["Body 3.0 mm", "Scout"] and found[1]["uid"] == "1.2.3.4.5"
    with pytest.warns(UserWarning, match="2 DICOM series"): assert read_dicom_series(folder).GetSize()[2] == 7
    assert read_dicom_series(folder, series="scout").GetSize()[2] == 3
    assert read_dicom_series(folder, series="1.2.3.4.5").GetSize()[2] == 3
    with pytest.raises(DicomSeriesError, match="no DICOM series in .* match 'knee'"): read_dicom_series(folder, series="knee")
    assert convert_dicom_cli([str(folder), "--list"]) == 0
    assert "Scout" in capsys.readouterr().out
    assert convert_dicom_cli([str(folder), str(tmp_path / "s.nrrd"), "--series", "Scout"]) == 0
    assert read_image(tmp_path / "s.nrrd").GetSize()[2] == 3
    assert convert_dicom_cli([str(folder), str(tmp_path / "b.nii.gz")]) == 0
    assert "warning" in capsys.readouterr().err


# ---------------------------------------------------------------- bad input: one clear error naming the file
def _bad_inputs(tmp_path: Path) -> dict:
    (tmp_path / "notes.txt").write_text("hello")
    sitk.WriteImage(sitk.Image(16, 16, sitk.sitkInt16), str(tmp_path / "slice.nii.gz"))
    (tmp_path / "empty_dicom").mkdir()
    (tmp_path / "broken_ctd.json").write_text('[{"direction": ["P", "I", "R"]}, {"label": 20, "X": 1.0, "Y": 2.0}]')
    (tmp_path / "nodir_ctd.json").write_text('[{"label": 20, "X": 1.0, "Y": 2.0, "Z": 3.0}]')
    (tmp_path / "notjson_ctd.json").write_text("[{'direction': ")
    (tmp_path / "badseed_ctd.json").write_text('[{"name": "L1", "x": 1.0, "y": 2.0}]')
    return {"missing.nii.gz": (MissingPathError, "does not exist"), "notes.txt": (SpineIOError, "not an image"),
            "slice.nii.gz": (SpineIOError, "2D image"), "empty_dicom": (DicomSeriesError, "no DICOM series found"),
            "broken_ctd.json": (CentroidFileError, "exactly the keys label, X, Y, Z"), "nodir_ctd.json": (CentroidFileError, "direction"),
            "notjson_ctd.json": (CentroidFileError, "invalid JSON"),
            "badseed_ctd.json": (CentroidFileError, "exactly the keys name (or label), x, y, z")}


def test_bad_input_raises_one_clear_error(tmp_path):
    for name, (exc, msg) in _bad_inputs(tmp_path).items():
        reader = read_ctd if name.endswith(".json") else read_image
        with pytest.raises(exc) as e: reader(tmp_path / name)
        assert msg in str(e.value) and name in str(e.value), (name, str(e.value))


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    for name, (exc, msg) in _bad_inputs(tmp_path).items():
        assert info_cli([str(tmp_path / name)]) == 1, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("spine-nb info: error:") and name in err and msg in err, (name, err)
    code = "import sys; from spine_nb.data.io import info_cli; sys.exit(info_cli(sys.argv[1:]))"
    for name in ("notes.txt", "broken_ctd.json"):  # the same from a fresh process: exit code 1, no traceback
        r = run_py(code, tmp_path / name)
        assert r.returncode == 1 and r.stderr.startswith("spine-nb info: error:") and name in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([PY, "-m", "spine_nb.convert_dicom", str(tmp_path / "empty_dicom"), str(tmp_path / "o.nii.gz")], capture_output=True, text=True, encoding="utf-8", cwd=ROOT)
    assert r.returncode == 1 and "no DICOM series found" in r.stderr and "Traceback" not in r.stderr
    assert convert_dicom_cli([str(tmp_path), str(tmp_path / "o.txt")]) == 1  # unknown output suffix
    assert convert_dicom_cli([]) == 2  # argparse usage error


def test_cli_help_and_real_conversion(tmp_path):
    for mod, words in (("convert_dicom", ["SRC", "--series", "--list", "JPEG 2000"]), ("info", ["PATH", "orientation", "_ctd.json"])):
        r = subprocess.run([PY, "-m", f"spine_nb.{mod}", "--help"], capture_output=True, text=True, encoding="utf-8", cwd=ROOT)
        assert r.returncode == 0 and f"spine-nb {mod.replace('_', '-')}" in r.stdout and all(w in r.stdout for w in words), r.stdout
    src = ROOT / "data" / "samples" / "totalseg_ct_dicom" / "example_ct_dicom"
    out = tmp_path / "ct.nii.gz"
    r = subprocess.run([PY, "-m", "spine_nb.convert_dicom", str(src), str(out)], capture_output=True, text=True, encoding="utf-8", cwd=ROOT)
    assert r.returncode == 0 and "wrote" in r.stderr, r.stderr  # messages go through logging, to stderr
    assert read_image(out).GetSize() == (512, 512, 20)
    r = subprocess.run([PY, "-m", "spine_nb.info", str(out)], capture_output=True, text=True, encoding="utf-8", cwd=ROOT)
    assert r.returncode == 0 and "orientation LPS" in r.stdout and "range       -1024 .. 1839" in r.stdout
    r = subprocess.run([PY, "-m", "spine_nb.info", "--convention", "totalseg", str(src.parent / "example_seg_dicom.nii.gz")], capture_output=True, text=True, encoding="utf-8", cwd=ROOT)
    assert r.returncode == 0 and "32 T12" in r.stdout and "33 T11" in r.stdout


def test_info_on_ctd_and_csv(real_data, tmp_path, capsys):
    assert info_cli([str(real_data / "verse004_labels_only" / "sub-verse004_seg-subreg_ctd.json")]) == 0
    out = capsys.readouterr().out
    assert "9 labels" in out and "PIR" in out and "24 L5" in out
    assert info_cli([str(real_data / "verse004_labels_only" / "sub-verse004_seg-vert_msk.nii.gz")]) == 0
    assert "16 T9" in capsys.readouterr().out


# ---------------------------------------------------------------- datasets
def _bids(root: Path, subjects=(("verse004", "_dir-ax"), ("verse004", "_dir-sag"), ("verse010", ""), ("gl003", ""), ("gl090", "_dir-iso"))):
    img = sitk.Image(4, 4, 4, sitk.sitkInt16)
    for sub, ent in subjects:
        raw, der = root / "rawdata" / f"sub-{sub}", root / "derivatives" / f"sub-{sub}"
        write_image(img, raw / f"sub-{sub}{ent}_ct.nii.gz"); write_image(img, der / f"sub-{sub}{ent}_seg-vert_msk.nii.gz")
        write_ctd(Centroids(("P", "I", "R"), {20: (1.0, 2.0, 3.0)}), der / f"sub-{sub}{ent}_seg-subreg_ctd.json")
    return root


def test_discover_csv_round_trip_and_folds(tmp_path):
    df = discover_verse_bids(_bids(tmp_path / "verse"))
    assert list(df.columns[:5]) == ["name", "type", "image_path", "mask_path", "centroid_json_path"]
    assert len(df) == 5 and df["subject"].nunique() == 4 and df["mask_path"].notna().all() and df["centroid_json_path"].notna().all()
    assert "sub-verse004_dir-ax" in set(df["name"])
    csv = write_dataset_csv(df, tmp_path / "verse" / "dataset.csv")
    assert "rawdata/sub-verse004/sub-verse004_dir-ax_ct.nii.gz" in csv.read_text(encoding="utf-8")  # relative paths
    pd.testing.assert_frame_equal(read_dataset_csv(csv), df, check_dtype=False)
    folds = kfold_splits(df, 2, seed=3)
    for tr, va in folds: assert not set(tr["subject"]) & set(va["subject"]) and len(tr) + len(va) == 5
    assert [list(v["name"]) for _, v in folds] == [list(v["name"]) for _, v in kfold_splits(df, 2, seed=3)]
    assert list(fold_split(df, 1, 2, seed=3)[1]["name"]) == list(folds[1][1]["name"])


def test_dataset_csv_problems_are_all_listed(tmp_path):
    root = _bids(tmp_path / "v")
    df = discover_verse_bids(root)
    csv = write_dataset_csv(df, root / "dataset.csv")
    Path(df["image_path"][0]).unlink(); Path(df["centroid_json_path"][3]).unlink()
    csv.write_text(csv.read_text(encoding="utf-8").replace(",train,", ",training,", 1))
    with pytest.raises(DatasetError) as e: read_dataset_csv(csv)
    msg = str(e.value)
    assert "3 problem(s)" in msg and "dataset.csv" in msg and "row 2 ('sub-gl003')" in msg and "row 5" in msg and "'training'" in msg
    assert len(validate_dataset(read_dataset_csv(csv, validate=False), raise_error=False)) == 3
    r = run_py("import sys; from spine_nb.data.io import info_cli; sys.exit(info_cli(sys.argv[1:]))", csv)
    assert r.returncode == 1 and "3 problem(s)" in r.stderr and "Traceback" not in r.stderr
    (root / "bad.csv").write_text("name,image\nx,y\n")
    with pytest.raises(DatasetError, match="missing column"): read_dataset_csv(root / "bad.csv")


# ---------------------------------------------------------------- seed-pipeline centroid files (world LPS mm)
def _oblique_image() -> sitk.Image:
    "A small image with anisotropic spacing and an oblique, non-LPS direction, so voxel and world coordinates differ everywhere."
    im = sitk.Image(12, 10, 8, sitk.sitkInt16)
    im.SetSpacing((0.8, 1.1, 2.5)); im.SetOrigin((-12.5, 30.25, 250.0))
    c, s = np.cos(0.3), np.sin(0.3)
    im.SetDirection((0.0, 0.0, -1.0, c, -s, 0.0, s, c, 0.0))  # columns: image axes in LPS
    return im


SEED_VOXELS = {"T12": (3, 4, 2), "L1": (5.5, 6.25, 4), "sacrum": (9, 8.5, 6.75)}


def test_seed_centroid_file_in_dataset_csv(tmp_path):
    "Seed files (name or label, x/y/z = SimpleITK LPS mm) in centroid_json_path read back as exactly the world points written."
    img = _oblique_image()
    world = {n: img.TransformContinuousIndexToPhysicalPoint(v) for n, v in SEED_VOXELS.items()}
    write_image(img, tmp_path / "img" / "s0.nii.gz")
    (tmp_path / "ctd").mkdir()
    by_name, by_label = tmp_path / "ctd" / "s0_centroids.json", tmp_path / "ctd" / "s1_centroids.json"
    by_name.write_text(json.dumps([{"name": n, "x": x, "y": y, "z": z} for n, (x, y, z) in world.items()]), encoding="utf-8")
    by_label.write_text(json.dumps([{"label": verse_id(n), "x": x, "y": y, "z": z} for n, (x, y, z) in world.items()]), encoding="utf-8")
    df = pd.DataFrame(dict(name=["s0", "s1"], type=["train", "val"], image_path=[str(tmp_path / "img" / "s0.nii.gz")] * 2,
                           mask_path=[None, None], centroid_json_path=[str(by_name), str(by_label)]))
    csv = write_dataset_csv(df, tmp_path / "dataset.csv")
    assert "ctd/s0_centroids.json" in csv.read_text(encoding="utf-8")  # stored relative to the CSV
    for _, row in read_dataset_csv(csv).iterrows():
        ref = read_image(row["image_path"])
        ctd = read_ctd(row["centroid_json_path"])
        assert ctd.space == "world" and ctd.axcodes == ("L", "P", "S") and list(ctd.points) == [19, 20, 26]
        got = ctd.to_world(ref)
        for n, p in world.items(): assert got[verse_id(n)].tolist() == list(p), n  # exact, no reference involved
        assert all(np.array_equal(ctd.to_world(sitk.Image(2, 2, 2, sitk.sitkUInt8))[k], v) for k, v in got.items())  # any reference
        # the same points as voxel coordinates of the image (and as a VerSe file in PIR) are the voxels they were made from
        vox = ctd.to_axcodes(ref, orientation_code(ref)).points
        for n, v in SEED_VOXELS.items(): np.testing.assert_allclose(vox[verse_id(n)], v, atol=1e-9)
        verse = read_ctd(write_ctd(ctd.to_axcodes(ref, "PIR"), tmp_path / f"{row['name']}_ctd.json"))
        for k, v in verse.to_world(ref).items(): np.testing.assert_allclose(v, got[k], atol=1e-9)
    assert read_ctd(write_ctd(read_ctd(by_name), tmp_path / "again.json")) == read_ctd(by_name)  # world centroids write back as seed files
    assert info_cli([str(by_name)]) == 0


@pytest.mark.parametrize("text, why", [
    ("[]", "empty list"), ('{"L1": [1, 2, 3]}', "the top level is a JSON object"), ("not json", "invalid JSON"),
    ('[{"name": "L1", "x": 1, "y": 2}]', "exactly the keys name (or label), x, y, z"),
    ('[{"name": "L1", "x": "1.5", "y": 2, "z": 3}]', "numeric x, y, z"),
    ('[{"name": "Q7", "x": 1, "y": 2, "z": 3}]', "unknown vertebra level 'Q7'"),
    ('[{"label": 99, "x": 1, "y": 2, "z": 3}]', "99 is not a VerSe vertebra id"),
    ('[{"name": "L1", "x": 1, "y": 2, "z": 3}, {"label": 20, "x": 4, "y": 5, "z": 6}]', "level L1 (VerSe id 20) appears twice"),
    ('[{"id": 20, "pos": [1, 2, 3]}]', "neither a VerSe header"),
])
def test_malformed_seed_centroid_file_names_the_file(tmp_path, text, why):
    "A centroid file in neither format, even when listed in a valid dataset CSV, raises CentroidFileError naming it and both layouts."
    write_image(_oblique_image(), tmp_path / "s0.nii.gz")
    bad = tmp_path / "broken_seed_centroids.json"; bad.write_text(text, encoding="utf-8")
    csv = write_dataset_csv(pd.DataFrame(dict(name=["s0"], type=["train"], image_path=[str(tmp_path / "s0.nii.gz")], mask_path=[None],
                                              centroid_json_path=[str(bad)])), tmp_path / "dataset.csv")
    row = read_dataset_csv(csv).iloc[0]
    with pytest.raises(CentroidFileError) as e: read_ctd(row["centroid_json_path"])
    msg = str(e.value)
    assert why in msg and "broken_seed_centroids.json" in msg, msg
    assert '{"direction": ["P","I","R"]}' in msg and '{"name": "L1", "x": 12.3' in msg and "world LPS mm" in msg, msg
