"""Repository-level checks: notebooks and library in sync and clean, the `spine-nb` command and its modules."""
import shutil, subprocess, sys, filecmp
from pathlib import Path
import pytest
from conftest import ROOT, BIN


def _tracked_files():
    try: out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", check=True)
    except (OSError, subprocess.CalledProcessError): pytest.skip("not a git checkout: cannot tell which files are tracked")
    return [l for l in out.stdout.splitlines() if l and (ROOT / l).is_file()]


def test_nbdev_export_and_clean_leave_no_diff(tmp_path):
    "nbdev_export and nbdev_clean, run on a copy of the checkout, change nothing (CI fails otherwise)."
    files = _tracked_files()
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT / f, tmp_path / f)
    for tool in ("nbdev_export", "nbdev_clean"):
        r = subprocess.run([str(BIN / tool)], cwd=tmp_path, capture_output=True, text=True, encoding="utf-8", errors="replace")
        assert r.returncode == 0, f"{tool} failed:\n{r.stderr[-3000:]}"
    changed = [f for f in files if not filecmp.cmp(ROOT / f, tmp_path / f, shallow=False)]
    new = [str(p.relative_to(tmp_path)) for p in (tmp_path / "spine_nb").rglob("*.py") if not (ROOT / p.relative_to(tmp_path)).exists()]
    assert not changed and not new, f"run `make export` and commit: changed {changed}, new {new}"


def test_notebooks_have_no_outputs_or_widget_state():
    import json
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        d = json.loads(nb.read_text(encoding="utf-8"))
        assert "widgets" not in d.get("metadata", {}), f"{nb.name} carries widget state"
        for c in d["cells"]:
            if c["cell_type"] == "code": assert not c.get("outputs") and c.get("execution_count") is None, f"{nb.name} has outputs"


def test_pipeline_notebooks_have_one_tagged_parameters_cell():
    import json
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
        exports = any("#| default_exp" in "".join(c["source"]) for c in cells)
        if not exports: assert len(tagged) == 1, f"pipeline notebook {nb.name} needs exactly one cell tagged `parameters`"


def test_console_script_lists_commands():
    r = subprocess.run([str(BIN / "spine-nb"), "--help"], capture_output=True, text=True, encoding="utf-8", errors="replace")
    assert r.returncode == 0 and "convert-dicom" in r.stdout and "phantom" in r.stdout


@pytest.mark.parametrize("mod", ["phantom", "convert_dicom", "info", "demo"])
def test_every_command_runs_as_module_with_help(mod):
    r = subprocess.run([sys.executable, "-m", f"spine_nb.{mod}", "--help"], capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"spine-nb {mod.replace('_', '-')}" in r.stdout and len(r.stdout.splitlines()) > 3


def test_papermill_understands_every_parameter():
    "papermill must parse each `name: type = value  # help` line, or `-p name value` is silently ignored."
    import json, re, papermill as pm
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        src = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        if not src: continue
        ks = json.loads(nb.read_text(encoding="utf-8")).get("metadata", {}).get("kernelspec", {})
        assert ks.get("name"), f"{nb.name} needs kernelspec metadata, or `papermill {nb.name} out.ipynb` fails without -k"
        declared = {m.group(1) for m in re.finditer(r"^(\w+)\s*[:=]", "".join(src[0]["source"]), re.M)}
        parsed = set(pm.inspect_notebook(str(nb)))
        assert declared == parsed, f"{nb.name}: papermill cannot parse {sorted(declared - parsed)} (no '=' inside comments)"


def _requirement_names(key: str) -> dict[str, str]:
    "{normalised distribution name: its requirement} of `key` in settings.ini."
    import configparser, re, shlex
    cfg = configparser.ConfigParser(); cfg.read(ROOT / "settings.ini", encoding="utf-8")
    reqs = shlex.split(cfg["DEFAULT"].get(key, ""))
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower().replace("_", "-"): r for r in reqs}


def test_requirements_are_ranges_and_declare_every_import():
    "The library's requirements are ranges (exact pins only in dev_requirements, for CI), and every third-party module it imports is declared."
    import ast, importlib.metadata as md
    runtime, dev = _requirement_names("requirements"), _requirement_names("dev_requirements")
    assert not [r for r in runtime.values() if "==" in r], f"exact pins reach every user: {runtime}"
    assert {"torch", "monai"} <= set(dev) and "==" in dev["torch"], "CI keeps its exact torch/monai pins in dev_requirements"
    extras = {"ipyniivue", "itkwidgets"}  # the `viewer` and `itk` extras of setup.py
    assert all(e in (ROOT / "setup.py").read_text(encoding="utf-8") for e in extras)
    mods = set()
    for f in (ROOT / "spine_nb").rglob("*.py"):
        for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import): mods |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module: mods.add(n.module.split(".")[0])
    dists = md.packages_distributions()
    third = sorted(m for m in mods - set(sys.stdlib_module_names) - {"spine_nb"} if m not in extras)
    undeclared = [m for m in third if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & set(runtime)]
    assert not undeclared, f"imported by spine_nb but not in settings.ini requirements: {undeclared}"
