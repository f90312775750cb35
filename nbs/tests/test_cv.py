"""Cross-validation (`spine-nb cv`): submitit local jobs, resume, failed folds, Slurm parameter mapping, torchrun DDP
on CPU with gloo, and a 2-fold end-to-end run through the real notebooks on a tiny synthetic set."""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN

NBS = ROOT / "nbs" / "pipelines"
REAL_NOTEBOOKS = ["10_train.spine.ipynb", "11_train.vertebrae.ipynb", "12_train.segmentation.ipynb", "21_inference.split.ipynb", "31_evaluation.ipynb"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def _nb(path: Path, params: str, body: str) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path)); return path


def stand_in_notebooks(d: Path) -> Path:
    "Stand-ins for the five notebooks; inference raises for the folds listed in <d>/fail.json; evaluation writes summary.json."
    from spine_nb.methods.payer.cv import STAGE_NOTEBOOKS, INFER_NOTEBOOK, EVAL_NOTEBOOK
    d.mkdir(parents=True, exist_ok=True); (d / "fail.json").write_text("[]")
    p = "csv: str = ''\nfold: int = 0\nnum_folds: int = 2\noutput_dir: str = ''\nepochs: int = 1\nseed: int = 0\npreset: str = 'paper'"
    for nb in STAGE_NOTEBOOKS.values():
        _nb(d / nb, p, "import json, pathlib; pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)\n"
                       "pathlib.Path(output_dir, 'params.json').write_text(json.dumps(dict(fold=fold, num_folds=num_folds, preset=preset, epochs=epochs)))")
    _nb(d / INFER_NOTEBOOK, p + "\nmodel_dir: str = ''\nsplit: str = 'val'",
        "import json\nif fold in json.load(open('fail.json')): raise RuntimeError(f'stand-in failure in fold {fold}')")
    _nb(d / EVAL_NOTEBOOK, p + "\npred_dir: str = ''\nrun_dir: str = ''",
        "import json, os, pathlib; pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)\n"
        "pathlib.Path(run_dir, 'summary.json').write_text(json.dumps(dict(dice_mean=0.8 + 0.1 * fold, hd95_mean=2.0 + fold, pid=os.getpid())))")
    return d


def _cv(args, timeout=600):
    return subprocess.run([str(BIN / "spine-nb"), "cv", *map(str, args)], capture_output=True, text=True, encoding="utf-8", errors="replace", env=ENV, timeout=timeout)


def test_cv_help_and_module():
    r = subprocess.run([sys.executable, "-m", "spine_nb.cv", "--help"], capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "spine-nb cv" in r.stdout and "--executor" in r.stdout and "--gpus-per-job" in r.stdout


def test_cv_bad_input_is_one_clear_error(tmp_path):
    r = _cv(["--csv", tmp_path / "missing.csv", "--output", tmp_path / "run"])
    assert r.returncode == 2 and "missing.csv not found" in r.stderr and "Traceback" not in r.stderr
    csv = tmp_path / "d.csv"; csv.write_text("name,type\n"); conf = tmp_path / "c.yaml"; conf.write_text("spine: {epoch: 3}\n")
    r = _cv(["--csv", csv, "--output", tmp_path / "run", "--config", conf])
    assert r.returncode == 2 and "c.yaml (spine): unknown config field 'epoch'; did you mean 'epochs'?" in r.stderr, r.stderr
    conf.write_text("preset: tiny\nvertebrae: {lr: 0.0007}\n")
    r = _cv(["--csv", csv, "--output", tmp_path / "run", "--config", conf, "--dry-run"])
    train_lines = [l for l in r.stdout.splitlines() if "_train." in l]
    assert r.returncode == 0 and len(train_lines) == 15 and all('"config_file"' in l and '"preset": "tiny"' in l for l in train_lines), r.stdout + r.stderr


@pytest.mark.timeout(300)
def test_cv_local_executor_failed_fold_and_resume(tmp_path):
    "Folds run as submitit LocalExecutor processes; a failing fold is reported without losing the other; a re-run skips finished folds."
    nbs = stand_in_notebooks(tmp_path / "nbs"); (nbs / "fail.json").write_text("[1]")
    csv = tmp_path / "d.csv"; csv.write_text("name,type,image_path,mask_path,centroid_json_path\n")
    run = tmp_path / "run"
    args = ["--csv", csv, "--output", run, "--folds", 2, "--preset", "tiny", "--epochs", 1, "--nbs_dir", nbs, "--executor", "local", "--timeout-min", 5]
    t0 = time.time(); r = _cv(args); t_first = time.time() - t0
    assert r.returncode == 1, r.stdout + r.stderr
    done0 = json.loads((run / "fold_0/DONE.json").read_text(encoding="utf-8"))
    assert done0["status"] == "done" and done0["metrics"]["dice_mean"] == pytest.approx(0.8)
    failed = json.loads((run / "fold_1/FAILED.json").read_text(encoding="utf-8"))
    assert "stand-in failure in fold 1" in failed["error"] and failed["notebook"].endswith("21_inference.split.ipynb")
    assert Path(failed["executed"]).exists() and not (run / "fold_1/DONE.json").exists()
    assert "FAILED fold 1" in r.stderr and "21_inference.split.ipynb" in r.stderr
    for nb in REAL_NOTEBOOKS: assert (run / "fold_0" / nb).exists(), nb
    # parameters reached the notebooks through their parameters cells
    assert json.loads((run / "fold_0/models/params.json").read_text(encoding="utf-8")) == dict(fold=0, num_folds=2, preset="tiny", epochs=1)
    # the folds ran as submitit local jobs, in processes other than this one and each other
    assert list((run / "submitit").glob("*_0_log.out")), "no submitit job logs"
    md = (run / "cv_metrics.md").read_text(encoding="utf-8"); assert "1/2 folds finished" in md and "Failed folds" in md
    # resume: fix the failure; fold 0 is skipped, fold 1 runs
    (nbs / "fail.json").write_text("[]"); mtime0 = (run / "fold_0/DONE.json").stat().st_mtime
    r = _cv(args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "folds [0] already finished" in r.stderr and (run / "fold_0/DONE.json").stat().st_mtime == mtime0
    assert (run / "fold_1/DONE.json").exists() and not (run / "fold_1/FAILED.json").exists()
    import pandas as pd
    table = pd.read_csv(run / "cv_metrics.csv", index_col=0)
    assert table.loc["dice_mean", "mean"] == pytest.approx(0.85) and table.loc["dice_mean", "n"] == 2
    assert (run / "cv_metrics.png").stat().st_size > 10_000
    pids = {json.loads((run / f"fold_{k}/DONE.json").read_text(encoding="utf-8"))["metrics"]["pid"] for k in (0, 1)}
    assert os.getpid() not in pids
    print(f"first run (2 folds in parallel, one failing): {t_first:.1f} s")


@pytest.mark.timeout(300)
def test_parallel_folds_with_max_parallel_under_python_m(tmp_path):
    "`python -m spine_nb.cv` (job function importable although the CLI runs as __main__); --max-parallel 1 runs folds one after the other."
    nbs = stand_in_notebooks(tmp_path / "nbs"); csv = tmp_path / "d.csv"; csv.write_text("name,type\n")
    args = ["--csv", csv, "--output", tmp_path / "run", "--folds", 3, "--only", "0,2", "--stages", "spine", "--nbs_dir", nbs, "--max-parallel", 1]
    r = subprocess.run([sys.executable, "-m", "spine_nb.cv", *map(str, args)], capture_output=True, text=True, encoding="utf-8", errors="replace", env=ENV, timeout=280)
    assert r.returncode == 0, r.stdout + r.stderr
    d0, d2 = (json.loads((tmp_path / f"run/fold_{k}/DONE.json").read_text(encoding="utf-8")) for k in (0, 2))
    assert d2["started"] >= d0["finished"], "with --max-parallel 1 the second fold must start after the first"
    assert not (tmp_path / "run/fold_1").exists() and "1/3 folds" not in (tmp_path / "run/cv_metrics.md").read_text(encoding="utf-8")


@pytest.mark.timeout(300)
def test_crashed_fold_job_is_reported(tmp_path):
    "A fold job that dies (here: its process is killed from inside a notebook) becomes FAILED.json; the other fold finishes."
    nbs = stand_in_notebooks(tmp_path / "nbs"); csv = tmp_path / "d.csv"; csv.write_text("name,type\n")
    _nb(nbs / "10_train.spine.ipynb", "fold: int = 0", "import os, signal\nif fold == 1: os.kill(os.getppid(), signal.SIGKILL)")
    run = tmp_path / "run"
    r = _cv(["--csv", csv, "--output", run, "--folds", 2, "--stages", "spine", "--nbs_dir", nbs])
    assert r.returncode == 1, r.stdout + r.stderr
    assert (run / "fold_0/DONE.json").exists() and not (run / "fold_1/DONE.json").exists()
    failed = json.loads((run / "fold_1/FAILED.json").read_text(encoding="utf-8"))
    assert "did not finish" in failed["error"] and failed["log"], failed


def test_slurm_parameter_mapping_without_slurm(tmp_path, monkeypatch):
    "make_executor('slurm') gives submitit's SlurmExecutor; the sbatch script it would submit carries our settings."
    from spine_nb.methods.payer.cv import make_executor
    (tmp_path / "bin").mkdir(); srun = tmp_path / "bin/srun"; srun.write_text("#!/bin/sh\nexit 0\n"); srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    ex = make_executor("slurm", tmp_path / "sub", timeout_min=120, gpus_per_job=1, cpus_per_task=8, mem_gb=32,
                       partition="gpu", max_parallel=2, account="proj", constraint="a100")
    assert type(ex._executor).__name__ == "SlurmExecutor"
    p = ex._executor.parameters
    assert p["partition"] == "gpu" and p["gpus_per_node"] == 1 and p["time"] == 120 and p["array_parallelism"] == 2
    sb = ex._executor._make_submission_file_text("python -u -m submitit.core._submit x", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--time=120", "--cpus-per-task=8", "--mem=32GB",
                 "--account=proj", "--constraint=a100", "--job-name=spine_nb_cv"):
        assert f"#SBATCH {line}" in sb, (line, sb)
    # the same settings on the local executor: generic ones translate, Slurm-only ones are ignored
    lex = make_executor("local", tmp_path / "sub", timeout_min=120, gpus_per_job=0, partition="gpu", max_parallel=2)
    assert type(lex._executor).__name__ == "LocalExecutor" and lex._executor.parameters["timeout_min"] == 120


DDP_SCRIPT = r'''
import sys, json, torch
from torch.utils.data import DataLoader, TensorDataset
from spine_nb.training.distributed import ddp_setup, ddp_wrap, ddp_sampler, unwrap, ddp_cleanup, is_main_process
info = ddp_setup(device="cpu")
torch.manual_seed(100 + info.rank)   # different initial weights per rank: DDP must broadcast rank 0's
model = ddp_wrap(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)), info)
g = torch.Generator().manual_seed(0)
ds = TensorDataset(torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g))
sampler = ddp_sampler(ds, shuffle=True, seed=0); opt = torch.optim.SGD(model.parameters(), lr=0.1)
seen = []
for epoch in range(2):
    sampler.set_epoch(epoch); seen.append(list(iter(sampler)))
    for x, y in DataLoader(ds, batch_size=4, sampler=sampler):
        opt.zero_grad(); torch.nn.functional.mse_loss(model(x), y).backward(); opt.step()
out = sys.argv[1]
torch.save(unwrap(model).state_dict(), f"{out}/rank{info.rank}.pt")
json.dump(dict(rank=info.rank, world=info.world_size, main=is_main_process(), seen=seen), open(f"{out}/rank{info.rank}.json", "w"))
ddp_cleanup()
'''


@pytest.mark.timeout(180)
def test_torchrun_two_process_ddp_gloo_on_cpu(tmp_path):
    "torchrun --nproc_per_node 2: both gloo ranks see disjoint shards and end with identical weights."
    import torch
    script = tmp_path / "ddp_steps.py"; script.write_text(DDP_SCRIPT)
    r = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
                       capture_output=True, text=True, encoding="utf-8", errors="replace", env=ENV, timeout=170)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    w = [torch.load(tmp_path / f"rank{k}.pt") for k in (0, 1)]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])
    torch.manual_seed(100); init = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).state_dict()
    assert not torch.equal(init["0.weight"], w[0]["0.weight"]), "no training step happened"
    meta = [json.loads((tmp_path / f"rank{k}.json").read_text(encoding="utf-8")) for k in (0, 1)]
    assert [m["world"] for m in meta] == [2, 2] and [m["main"] for m in meta] == [True, False]
    for e in range(2): assert not set(meta[0]["seen"][e]) & set(meta[1]["seen"][e]) and len(meta[0]["seen"][e]) == 16


@pytest.mark.timeout(900)
def test_cv_two_folds_tiny_end_to_end(tmp_path):
    "2-fold cross-validation through the real notebooks: tiny preset, 1 epoch, 4 coarse synthetic cases."
    missing = [nb for nb in REAL_NOTEBOOKS if not (NBS / nb).exists()]
    if missing: pytest.skip(f"pipeline notebooks not written yet: {missing}")
    generate_dataset = pytest.importorskip("spine_nb.data.phantom").generate_dataset
    csv = generate_dataset(tmp_path / "data", n=4, seed=0, spacing=(4.0, 4.0, 4.0), progress=False)
    run = tmp_path / "cv"
    t0 = time.time()
    conf = tmp_path / "train.yaml"; conf.write_text("preset: tiny\nvertebrae:\n  lr: 0.0007\n")  # --config: a section for one stage
    r = _cv(["--csv", csv, "--output", run, "--folds", 2, "--config", conf, "--epochs", 1, "--device", "cpu", "--executor", "local",
             "--timeout-min", 14], timeout=880)
    dt = time.time() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:] + "".join(
        f"\nfold {k}: {(run / f'fold_{k}/FAILED.json').read_text(encoding='utf-8')[:3000]}" for k in (0, 1) if (run / f"fold_{k}/FAILED.json").exists())
    for k in (0, 1):
        assert (run / f"fold_{k}/DONE.json").exists()
        for nb in REAL_NOTEBOOKS: assert (run / f"fold_{k}" / nb).exists(), nb
        for stage in ("spine", "vertebrae", "segmentation"):
            assert (run / f"fold_{k}/models/payer/{stage}/checkpoints/fold_{k}/best.pth").exists(), (k, stage)
        import yaml  # the exact config each fold trained with: the file's preset and field, the --epochs flag
        used = {s: yaml.safe_load((run / f"fold_{k}/models/payer/{s}/logs/fold_{k}/config.yaml").read_text(encoding="utf-8")) for s in ("spine", "vertebrae")}
        assert used["vertebrae"]["lr"] == 0.0007 and used["spine"]["lr"] != 0.0007, used
        assert {u["preset"] for u in used.values()} == {"tiny"} and {u["epochs"] for u in used.values()} == {1}
    assert (run / "train_config.yaml").read_text(encoding="utf-8") == conf.read_text(encoding="utf-8")
    import pandas as pd
    table = pd.read_csv(run / "cv_metrics.csv", index_col=0)
    assert "dice_mean" in table.index and table.loc["dice_mean", "n"] == 2
    assert (run / "cv_metrics.png").exists() and "2/2 folds finished" in (run / "cv_metrics.md").read_text(encoding="utf-8")
    print(f"2-fold tiny cross-validation: {dt:.0f} s\n" + (run / "cv_metrics.md").read_text(encoding="utf-8"))
