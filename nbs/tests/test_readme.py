"""The README's library example runs as written (on tiny random-weight checkpoints), the seed's top-level API imports,
and a prediction reads both as attributes and as the mapping the original pipeline's README used."""
import inspect, os, re, subprocess, sys, textwrap
from pathlib import Path
import pytest
from conftest import ROOT

README = ROOT / "README.md"
SECTION = "## Use the library"
SEED_API = ("from spine_nb import SpineLocalizationTrainer, SpineLocalizationConfig, VertebraeLocalizationTrainer, "
            "VertebraeLocalizationConfig, VertebraeSegmentationTrainer, VertebraeSegmentationConfig, FullPipelinePredictor, VerSeMetrics")


def section(text: str, heading: str) -> str:
    "The lines under `heading` up to the next heading of the same or a higher level (fenced code is not a heading)."
    level, out, inside, fence = len(heading) - len(heading.lstrip("#")), None, False, False
    for line in text.splitlines():
        if line.lstrip().startswith("```"): fence = not fence
        m = None if fence else re.match(r"^(#{1,6})\s", line)
        if out is None:
            if line.strip() == heading: out = []
            continue
        if m and len(m.group(1)) <= level: break
        out.append(line)
    if out is None: raise AssertionError(f"README.md has no heading {heading!r}")
    return "\n".join(out)


def python_blocks(md: str) -> list[str]:
    "The contents of every ```python (or ```py) fenced block of `md`, in order."
    blocks = re.findall(r"^[ \t]*```[ \t]*(?:python|py|python3)[ \t]*\n(.*?)^[ \t]*```[ \t]*$", md, flags=re.M | re.S)
    return [textwrap.dedent(b) for b in blocks]


def model_dirs(code: str) -> dict[str, tuple[int, ...]]:
    "{relative model folder: folds} of every `from_model_dir(\"…\")` call of `code` (folds (0,) unless the call names them)."
    out = {}
    for m in re.finditer(r'from_model_dir\(\s*["\']([^"\']+)["\']([^)]*\)?)', code):
        folds = re.search(r"folds\s*=\s*[\(\[]([\d,\s]*)[\)\]]", m.group(2))
        ks = tuple(int(k) for k in re.findall(r"\d+", folds.group(1))) if folds else ()
        out.setdefault(m.group(1), set()).update(ks or (0,))
    return {d: tuple(sorted(ks)) for d, ks in out.items()}


def test_section_parsing():
    md = "# T\n## Use the library\ntext\n```python\na = 1\n```\n```bash\nls\n```\n### Sub\n```py\n# not a heading\nb = 2\n```\n## Next\n```python\nc = 3\n```\n"
    s = section(md, SECTION)
    assert python_blocks(s) == ["a = 1\n", "# not a heading\nb = 2\n"]
    assert model_dirs('P.from_model_dir("outputs/x", folds=(0, 2))\nP.from_model_dir("m")\nP.from_model_dir(\'m\', folds=[1])') == \
        {"outputs/x": (0, 2), "m": (0, 1)}


def test_readme_library_example_runs(tmp_path):
    "Every ```python block of the README's library section, concatenated, runs in a fresh interpreter."
    code = "\n".join(python_blocks(section(README.read_text(encoding="utf-8"), SECTION)))
    assert code.strip(), f"README.md's {SECTION!r} section has no ```python block"
    from spine_nb.methods.payer.predictor import random_checkpoints
    for d, folds in model_dirs(code).items():
        if not Path(d).is_absolute(): random_checkpoints(tmp_path / d, "tiny", folds=folds)
    (tmp_path / "readme_example.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "readme_example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       encoding="utf-8", errors="replace", timeout=120)
    assert r.returncode == 0, f"README.md's {SECTION!r} example failed:\n{code}\n--- stderr ---\n{r.stderr[-4000:]}"


def test_seed_api_imports():
    ns = {}
    exec(SEED_API, ns)
    names = [n.strip() for n in SEED_API.split("import", 1)[1].split(",")]
    for n in names:
        assert n in ns, n
        assert inspect.isclass(ns[n]) or callable(ns[n]), f"{n} is a {type(ns[n]).__name__}, not a class or callable"


def test_prediction_reads_as_a_mapping(tmp_path):
    from spine_nb.data.phantom import make_phantom
    from spine_nb.methods.payer.predictor import FullPipelinePredictor, random_checkpoints
    case = make_phantom(seed=0, fov="thoracolumbar", spacing=(3.0, 3.0, 3.0))
    pred = FullPipelinePredictor.from_model_dir(random_checkpoints(tmp_path / "models", "tiny"), folds=(0,), device="cpu")
    result = pred.predict(case["image"])
    assert result["segmentation"] is result.segmentation and result.segmentation is not None
    assert result["landmarks"] == result.landmarks
    assert result["spine_centroid"] is result.spine_centroid and result["timings"] is result.timings
    assert "segmentation" in result and "nope" not in result and result.get("nope", 3) == 3
    assert list(result.keys())[:4] == ["segmentation", "landmarks", "spine_centroid", "timings"]
    with pytest.raises(KeyError, match="valid keys: segmentation, landmarks"): result["nope"]
    assert not isinstance(result, dict)
