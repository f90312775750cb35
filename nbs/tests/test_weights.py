"""The shipped weights: they label unseen phantoms from one command, every file is checked, a checkpoint that would run
code is refused, and a family a lab hosts downloads into the cache (loopback HTTP server) and serves `spine-nb infer`."""
import functools, http.server, json, os, pickle, threading
from pathlib import Path
import pandas as pd
import pytest
import torch
from spine_nb.data.phantom import generate_dataset
from spine_nb.evaluation.metrics import evaluate_dataset, dataset_summary
from spine_nb.inference.weights import (WeightsError, archive_family, find_family, pack_weights, read_manifest, sha256_file,
                                        verify_family, weights_cli)
from spine_nb.methods.payer.predictor import FullPipelinePredictor, infer_cli
from spine_nb.training.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> Path:
    "Two CT phantoms (whole spine, thoracolumbar) of a seed no training run uses."
    d = tmp_path_factory.mktemp("unseen")
    a = generate_dataset(d / "whole", n=1, seed=4242, fov="whole", progress=False)
    b = generate_dataset(d / "tl", n=1, seed=4243, fov="thoracolumbar", progress=False)
    rows = pd.concat([pd.read_csv(a).assign(image_path=lambda t: str(d / "whole") + "/" + t.image_path, mask_path=lambda t: str(d / "whole") + "/" + t.mask_path,
                                            centroid_json_path=lambda t: str(d / "whole") + "/" + t.centroid_json_path, name="whole"),
                      pd.read_csv(b).assign(image_path=lambda t: str(d / "tl") + "/" + t.image_path, mask_path=lambda t: str(d / "tl") + "/" + t.mask_path,
                                            centroid_json_path=lambda t: str(d / "tl") + "/" + t.centroid_json_path, name="tl")])
    rows.drop(columns=[c for c in ("semantic_path",) if c in rows]).to_csv(d / "dataset.csv", index=False)
    return d / "dataset.csv"


def test_shipped_family_is_complete_and_small():
    fam = find_family(None, "ct")
    assert fam["method"] == "payer" and fam["modality"] == "ct" and fam.get("commit")
    size = sum((Path(fam["path"]) / f).stat().st_size for f in fam["files"])
    assert size < 20e6, f"shipped CT weights are {size / 1e6:.1f} MB"
    card = (Path(fam["path"]) / "MODEL_CARD.md").read_text()
    for needed in ("How it was made", "Scores", "Intended use", "sha256", fam["commit"]): assert needed in card


def test_one_command_labels_unseen_phantoms(unseen, tmp_path):
    "`spine-nb infer CSV` without --model_dir: the shipped weights find and name the vertebrae of phantoms it never saw."
    out = tmp_path / "o"
    assert infer_cli([str(unseen), "--output", str(out), "--quiet", "--no_qc"]) == 0
    meta = json.loads((out / "whole_metadata.json").read_text())
    assert meta["weights"]["name"] == find_family(None, "ct")["name"], meta.get("weights")
    verts, cases = evaluate_dataset(out, unseen, tmp_path / "m.csv", progress=False)
    s = dataset_summary(verts)
    assert (cases.status == "ok").all() and s["id_rate"] >= 0.8 and s["dice_mean"] >= 0.5, s


def test_mr_scan_served_or_named(unseen, tmp_path):
    "An MR scan without --model_dir goes to the shipped MR family, or fails with a message that says none is shipped."
    d = generate_dataset(tmp_path / "mr", n=1, seed=4244, modality="mr", fov="lumbar", progress=False)
    out = tmp_path / "o"
    rc = infer_cli(["--image", str(d), "--output", str(out), "--quiet", "--no_qc"])
    row = pd.read_csv(out / "summary.csv").iloc[0]
    if "mr" in read_manifest()["default"]: assert rc == 0 and row.status == "ok"
    else: assert rc == 1 and "no shipped model for MR scans" in row.error and "--model_dir" in row.error


class _Payload:
    def __reduce__(self): return (os.system, ("touch /tmp/spine_nb_pwned_by_weights",))


def test_family_with_code_is_refused(tmp_path, monkeypatch):
    "A family whose checksums are right but whose checkpoint carries a pickle payload is refused; nothing runs."
    monkeypatch.setenv("SPINE_NB_WEIGHTS", str(tmp_path / "cache"))
    fam = pack_weights(find_family(None, "ct")["path"], "evil", tmp_path / "cache")
    ck = fam / "payer" / "spine" / "checkpoints" / "fold_0" / "best.pth"
    torch.save({"stage": "spine", "model": {}, "x": _Payload()}, ck)
    j = json.loads((fam / "family.json").read_text()); j["files"][ck.relative_to(fam).as_posix()] = sha256_file(ck)
    (fam / "family.json").write_text(json.dumps(j))
    Path("/tmp/spine_nb_pwned_by_weights").unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="was refused"): FullPipelinePredictor.from_shipped("evil", device="cpu")
    assert not Path("/tmp/spine_nb_pwned_by_weights").exists()
    ck.write_bytes(ck.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="does not match its sha256"): FullPipelinePredictor.from_shipped("evil", device="cpu")


def test_download_from_a_lab_server(unseen, tmp_path, monkeypatch):
    "`spine-nb weights download NAME --url --sha256` from a loopback server, then `spine-nb infer --weights NAME`."
    monkeypatch.setenv("SPINE_NB_WEIGHTS", str(tmp_path / "cache"))
    fam = pack_weights(find_family(None, "ct")["path"], "lab-ct", tmp_path / "build", description="a lab's copy")
    arc, digest = archive_family(fam, tmp_path / "srv" / "lab-ct.tar.gz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler); srv.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/lab-ct.tar.gz"
    try:
        assert weights_cli(["download", "lab-ct", "--url", url, "--sha256", "f" * 64, "-q"]) == 1
        assert not (tmp_path / "cache" / "lab-ct").exists()
        assert weights_cli(["download", "lab-ct", "--url", url, "--sha256", digest, "-q"]) == 0
    finally: srv.shutdown()
    assert verify_family(tmp_path / "cache" / "lab-ct")["description"] == "a lab's copy"
    out = tmp_path / "o"
    assert infer_cli([str(unseen), "--weights", "lab-ct", "--output", str(out), "--quiet", "--no_qc"]) == 0
    assert json.loads((out / "tl_metadata.json").read_text())["weights"]["name"] == "lab-ct"
    assert infer_cli([str(unseen), "--weights", "nope", "--output", str(tmp_path / "o2"), "--quiet", "--no_qc"]) == 1


def test_a_scan_without_a_spine_gets_no_vertebrae_found(tmp_path, caplog):
    "A volume of noise and a body of soft tissue without bone: the shipped weights name no level, and the command says so."
    import logging
    import numpy as np, SimpleITK as sitk
    from spine_nb.data.io import write_image
    rng = np.random.default_rng(0)
    noise = sitk.GetImageFromArray(rng.normal(0, 300, (100, 128, 128)).astype(np.int16)); noise.SetSpacing((1.5, 1.5, 2.0))
    z, y, x = np.mgrid[:100, :128, :128]; body = (y - 64) ** 2 / 56 ** 2 + (x - 64) ** 2 / 48 ** 2 < 1
    soft = sitk.GetImageFromArray(np.where(body, rng.normal(40, 15, body.shape), -1000).astype(np.int16)); soft.SetSpacing((1.5, 1.5, 2.0))
    for name, im in (("noise", noise), ("soft_tissue", soft)): write_image(im, tmp_path / "in" / f"{name}.nii.gz")
    lg = logging.getLogger("spine_nb"); lg.addHandler(caplog.handler)  # the command's logging setup does not propagate to the root
    try: assert infer_cli([str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--device", "cpu", "--no_qc", "-q"]) == 0
    finally: lg.removeHandler(caplog.handler)
    s = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert s["n_vertebrae"].tolist() == [0, 0] and s["status"].tolist() == ["ok", "ok"]
    assert sum("no vertebrae found" in r.getMessage() for r in caplog.records) == 2
