"""One preprocessing path: the network input the predictor builds for a case equals the one training builds for it.

Training builds it with the validation transforms of each stage (`spine_nb.methods.payer.transforms.get_transforms(stage,
config, train=False)`); the predictor with `run_spine_stage` / `run_vertebrae_stage` / `run_segmentation_stage`, whose
networks here only record their input. Both resample with the same functions onto the same stage grid (the scan's own axes in RAS order, oblique scans
included), so the voxels are the same points and the values agree to float rounding."""
import numpy as np
import pytest
import torch
from spine_nb.core import LANDMARK_IDS
from spine_nb.data.phantom import make_phantom
from spine_nb.data.geometry import stage_grid
from spine_nb.transforms import intensity_window, network_input, resample_to_grid, world_to_voxel
from spine_nb.inference.sliding import StageModel
from spine_nb.methods.payer.plan import get_config
from spine_nb.methods.payer.transforms import get_transforms, stage_plan
from spine_nb.methods.payer.predictor import run_spine_stage, run_segmentation_stage


class Recorder(torch.nn.Module):
    "A stand-in network that records its input and returns its first channel."
    multiple = 1
    def __init__(self): super().__init__(); self.inputs = []
    def forward(self, x): self.inputs.append(x.detach().clone()); return x[:, :1]


@pytest.fixture(scope="module", params=["ct", "mr", "ct-oblique"])
def case(request):
    modality, oblique = request.param.split("-")[0], 12.0 if request.param.endswith("oblique") else 0.0
    ph = make_phantom(3, modality=modality, fov="thoracolumbar", spacing=(2.0, 2.0, 2.0), oblique=oblique)
    return {"name": "p", "image": ph["image"], "mask": ph["mask"], "centroids": ph["centroids"], "modality": modality}


def test_stage_grids_follow_the_scan_axes(case):
    "An axis-aligned scan gets RAS stage grids; an oblique one keeps its tilt (no rotation is resampled)."
    from spine_nb.data.geometry import RAS_DIRECTION
    D, Dg = stage_grid(case["image"], (4.0, 4.0, 4.0)).direction, np.asarray(case["image"].GetDirection()).reshape(3, 3)
    assert np.allclose(np.abs(D.T @ Dg).max(0), 1.0, atol=1e-9)  # every stage axis is one of the scan's axes
    assert np.allclose(D, RAS_DIRECTION) == np.allclose(np.abs(Dg), np.round(np.abs(Dg)), atol=1e-9)


def _offset(inner_affine, outer_affine) -> np.ndarray:
    "Voxel index, in the outer grid, of the inner grid's first voxel (both RAS affines)."
    return world_to_voxel(np.asarray(inner_affine)[:3, 3][None], outer_affine)[0]


def _window(case):
    return intensity_window(case["image"], case["modality"])


def test_spine_stage_input_matches_training(case):
    cfg = get_config("spine", "cpu", modality=case["modality"])
    train = get_transforms("spine", cfg, train=False)(case)["image"]
    rec = Recorder(); sm = StageModel("spine", [rec], {"spacing": cfg.spacing, "image_size": (512, 512, 512)}, [])
    run_spine_stage(case["image"], sm, "cpu", _window(case))
    x = rec.inputs[0][0]  # the whole scan on the stage grid
    full = resample_to_grid(case["image"], stage_grid(case["image"], cfg.spacing))
    o = _offset(train.affine, full.affine); np.testing.assert_allclose(o, np.round(o), atol=1e-6)  # the same lattice
    o = np.round(o).astype(int)
    # the training crop (centred on the scan, padded with -1 outside it) against the same voxels of the predictor's input
    lo = np.maximum(o, 0); hi = np.minimum(o + np.asarray(train.shape[1:]), np.asarray(x.shape[1:]))
    t = train[0][tuple(slice(a - b, c - b) for a, b, c in zip(lo, o, hi))]
    p = x[0][tuple(slice(a, c) for a, c in zip(lo, hi))]
    assert t.numel() > 1000
    torch.testing.assert_close(torch.as_tensor(p), torch.as_tensor(t.as_tensor()), atol=1e-5, rtol=0)


def test_vertebrae_stage_crop_matches_training(case):
    cfg = get_config("vertebrae", "cpu", modality=case["modality"])
    train = get_transforms("vertebrae", cfg, train=False)(case)["image"]
    ids = [k for k in case["centroids"] if int(k) in LANDMARK_IDS]
    center = np.mean([case["centroids"][k] for k in ids], 0)  # the training crop's centre: the mean landmark
    g = stage_grid(case["image"], cfg.spacing).crop(center, (cfg.image_size[0], cfg.image_size[1], None))  # as `run_vertebrae_stage`
    x = network_input(case["image"], g, _window(case))[0, 0]
    gm = resample_to_grid(case["image"], g)
    o = np.round(_offset(train.affine, gm.affine)).astype(int)
    assert (o[:2] == 0).all(), o  # the same box across the spine
    lo, hi = max(o[2], 0), min(o[2] + train.shape[3], x.shape[2])
    torch.testing.assert_close(x[:, :, lo:hi], torch.as_tensor(train[0, :, :, lo - o[2]:hi - o[2]].as_tensor()), atol=1e-5, rtol=0)


def test_segmentation_stage_input_matches_training(case):
    cfg = get_config("segmentation", "cpu", modality=case["modality"])
    crops = get_transforms("segmentation", cfg, train=False)(case)
    for crop in crops[::3]:
        lab = int(crop["target_label"])
        rec = Recorder()
        sm = StageModel("segmentation", [rec], {"spacing": cfg.spacing, "image_size": cfg.image_size, "heatmap_sigma": cfg.heatmap_sigma}, [])
        run_segmentation_stage(case["image"], sm, "cpu", _window(case), [{"label": lab, "world": list(case["centroids"][lab])}])
        x = rec.inputs[0][0]  # (image, landmark heatmap) of the predictor's crop
        torch.testing.assert_close(x, torch.as_tensor(crop["image"].as_tensor()), atol=1e-5, rtol=0)


def test_checkpoints_carry_the_plan(tmp_path):
    from spine_nb.methods.payer.predictor import random_checkpoints, load_stage
    from spine_nb.training.checkpoint import read_checkpoint, run_paths
    md = random_checkpoints(tmp_path, "tiny")
    ck = read_checkpoint(run_paths(md, "payer", "segmentation").best)
    assert ck["plan"] == stage_plan(get_config("segmentation", "tiny"))
    _, cfg, _ = load_stage(run_paths(md, "payer", "segmentation").best, "segmentation")
    assert cfg["plan"]["intensity"]["hu_window"] == [-1000.0, 1500.0] and cfg["spacing"] == ck["plan"]["spacing"]
    del ck["plan"]; torch.save(ck, tmp_path / "old.pth")  # a checkpoint from before plans: the plan is rebuilt from its config
    _, cfg2, _ = load_stage(tmp_path / "old.pth", "segmentation")
    assert cfg2["plan"] == cfg["plan"]
