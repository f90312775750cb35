"""Tests of spine_nb.viz as a person sees it: the slice viewer's sliders change the picture, and the default
`view3d` backend (NiiVue) really renders the label colours in JupyterLab 4 in headless Chromium, offline.

The browser test starts JupyterLab on 127.0.0.1 (token, temporary root and settings folders, the app exposed
as `window.jupyterapp`), opens a notebook that shows a synthetic case with `view3d(...)`, runs all cells through
JupyterLab's own `notebook:run-all-cells` command (driven by Python Playwright with Debian's /usr/bin/chromium;
no Playwright browser download), screenshots the page and counts pixels close to the level colours.
It skips with a reason when chromium or playwright is missing."""
from __future__ import annotations
import json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spine_nb.viz import LEVEL_COLORS, level_color, view3d, SliceViewer, write_label_description, write_slicer_color_table

BIN = Path(sys.executable).parent
IDS = (19, 20, 21)  # T12, L1, L2
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# The synthetic case, as notebook source (also executed here for the Python-side tests).
CASE_SRC = f'''
import numpy as np, SimpleITK as sitk
def boxes(shape=(64, 48, 48), ids={IDS!r}, spacing=(1.0, 1.0, 2.0)):
    arr = np.full(shape, -1000, np.int16); lab = np.zeros(shape, np.uint8); cents = {{}}
    ref = sitk.Image(shape[::-1], sitk.sitkInt16); ref.SetSpacing(spacing)
    for i, z in zip(ids, np.linspace(shape[0] - 14, 10, len(ids)).astype(int)):
        arr[z - 6:z + 7, 10:38, 10:38] = 700; lab[z - 6:z + 7, 10:38, 10:38] = i
        cents[i] = np.array(ref.TransformContinuousIndexToPhysicalPoint((24.0, 24.0, float(z))))
    img = sitk.GetImageFromArray(arr); img.SetSpacing(spacing)
    mask = sitk.GetImageFromArray(lab); mask.CopyInformation(img)
    return img, mask, cents
img, mask, cents = boxes()
'''


def synthetic_case():
    ns: dict = {}; exec(CASE_SRC, ns); return ns["img"], ns["mask"], ns["cents"]


def color_pixels(rgb: np.ndarray, verse_id: int, tol: int = 30) -> int:
    "Pixels within `tol` (per channel) of a level colour."
    return int((np.abs(rgb[..., :3].astype(int) - np.array(level_color(verse_id))).max(-1) <= tol).sum())


# ---------------------------------------------------------------- Python side
def test_slice_viewer_sliders_change_the_picture():
    img, mask, cents = synthetic_case()
    sv = view3d(img, mask, cents, backend="slices")
    assert isinstance(sv, SliceViewer)
    first = sv.render()
    for plane_name, slider in sv.sliders.items():
        before = sv.render(); png = sv.output.value
        slider.value = slider.max if slider.value != slider.max else slider.min
        after = sv.render()
        assert (before != after).any(), f"moving the {plane_name} slider did not change the picture"
        assert sv.output.value != png, f"the {plane_name} slider did not update the widget image"
    sv = SliceViewer(img, mask, cents)  # back to the centre slices
    sv.opacity.value = 1.0; opaque = sv.render()
    sv.opacity.value = 0.0; none = sv.render()
    assert sum(color_pixels(opaque, i, 10) for i in IDS) > sum(color_pixels(none, i, 10) for i in IDS)
    assert first.ndim == 3 and first.shape[2] == 3


def test_label_tables_parse(tmp_path):
    p = write_label_description(tmp_path / "verse_itksnap.txt")
    rows = [l.split(None, 7) for l in p.read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]
    assert len(rows) == 29 and rows[0][7] == '"Clear Label"'
    for r in rows[1:]:
        i = int(r[0]); assert tuple(map(int, r[1:4])) == LEVEL_COLORS[i]
        assert float(r[4]) == 1.0 and r[5] == r[6] == "1" and r[7].startswith('"') and r[7].endswith('"')
    q = write_slicer_color_table(tmp_path / "verse.ctbl")
    rows = [l.split() for l in q.read_text(encoding="utf-8").splitlines() if not l.startswith("#")]
    assert len(rows) == 29 and all(len(r) == 6 for r in rows)
    assert {int(r[0]): tuple(map(int, r[2:5])) for r in rows[1:]} == LEVEL_COLORS


# ---------------------------------------------------------------- in a real browser
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    "A JupyterLab server on 127.0.0.1 with a token and a temporary root; yields (base_url, token, root)."
    if not CHROMIUM: pytest.skip("chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="python playwright is not installed (pip install playwright)")
    root = tmp_path / "root"; root.mkdir()
    token, port = "spine-nb-test-token", free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True); news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2); break
            except Exception:
                if proc.poll() is not None: break
                time.sleep(0.5)
        else: pytest.fail("JupyterLab did not start in 60 s:\n" + (tmp_path / "jupyterlab.log").read_text(encoding="utf-8")[-3000:])
        if proc.poll() is not None: pytest.fail("JupyterLab exited:\n" + (tmp_path / "jupyterlab.log").read_text(encoding="utf-8")[-3000:])
        yield base, token, root
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()


def write_notebook(path: Path, cells: list[str]):
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                     "source": src} for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def run_in_browser(base: str, token: str, nb_name: str, shot: Path, slices_shot: Path | None = None,
                   wait_s: float = 120) -> tuple[np.ndarray, dict]:
    "Open the notebook in JupyterLab, run all cells, wait for the level colours, screenshot; returns (rgb, info)."
    from playwright.sync_api import sync_playwright
    args = ["--no-sandbox", "--disable-gpu-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--ignore-gpu-blocklist", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    info: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            logs: list[str] = []
            page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
            page.goto(f"{base}/lab/tree/{nb_name}?token={token}", timeout=60_000)
            page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=60_000)
            info["webgl2"] = page.evaluate("() => !!document.createElement('canvas').getContext('webgl2')")
            page.wait_for_function("""() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator, .jp-KernelStatus');
                                     return window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget.sessionContext
                                       && window.jupyterapp.shell.currentWidget.sessionContext.session
                                       && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel
                                       && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'; }""",
                                   timeout=90_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            deadline = time.time() + wait_s; rgb = None
            while time.time() < deadline:
                time.sleep(3)
                page.screenshot(path=str(shot))
                rgb = np.asarray(Image.open(shot).convert("RGB"))
                if all(color_pixels(rgb, i) > 50 for i in IDS): break
            info["canvases"] = page.evaluate("() => document.querySelectorAll('.jp-OutputArea canvas').length")
            if slices_shot is not None:  # the slice viewer's ipywidgets Image (last output), scrolled into view
                el = page.locator(".jp-OutputArea-output img").last
                el.wait_for(timeout=60_000); el.scroll_into_view_if_needed(); el.screenshot(path=str(slices_shot))
                info["sliders"] = page.locator(".jp-OutputArea-output .widget-slider").count()
            info["errors"] = page.evaluate("() => Array.from(document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]')).map(e => e.innerText).join('\\n')")
            info["console"] = logs[-30:]
        finally:
            browser.close()
    return rgb, info


@pytest.mark.timeout(400)
def test_view3d_default_backend_renders_label_colours_in_jupyterlab(jupyterlab, tmp_path):
    base, token, root = jupyterlab
    write_notebook(root / "view.ipynb", [
        CASE_SRC + "\nfrom spine_nb.viz import view3d, _in_notebook_frontend\nprint('frontend', _in_notebook_frontend())",
        "v = view3d(img, mask, cents, opacity=1.0)  # default backend: NiiVue in a notebook front end\nprint(type(v).__name__)\nv",
        "view3d(img, mask, cents, backend='slices', opacity=1.0)"])
    out = Path(os.environ.get("SPINE_NB_VIZ_SHOT_DIR") or tmp_path)
    shot, slices_shot = out / "jupyterlab_niivue.png", out / "jupyterlab_slices.png"
    rgb, info = run_in_browser(base, token, "view.ipynb", shot, slices_shot)
    counts = {i: color_pixels(rgb, i) for i in IDS}
    print("screenshot", shot, "pixels per level", counts, info)
    assert info["canvases"] >= 1, f"no canvas was rendered: {info}"
    assert all(n > 50 for n in counts.values()), f"label colours missing in the screenshot {shot}: {counts}; {info}"
    # the slice viewer (ipywidgets + matplotlib) renders in the same front end, with its 4 sliders
    srgb = np.asarray(Image.open(slices_shot).convert("RGB"))
    scounts = {i: color_pixels(srgb, i, 10) for i in IDS}
    print("slice viewer", slices_shot, scounts, info.get("sliders"))
    assert info.get("sliders") == 4, info
    assert sum(n > 20 for n in scounts.values()) >= 2, f"label colours missing in the slice viewer {slices_shot}: {scounts}"
