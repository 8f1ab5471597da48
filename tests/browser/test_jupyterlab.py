"""End to end in a real browser: executed notebooks open in JupyterLab and their figures render.

Runs smoke notebooks with :func:`ddmi_lite.reproduce.run_notebook` into a temporary folder,
serves it with JupyterLab on 127.0.0.1 (a free port, a random token), opens each executed
notebook in headless Chromium (Debian's ``chromium-headless-shell`` or ``chromium``, driven by
the Python package ``playwright`` through ``executable_path``: no browser download), and checks
that every figure of the outputs is an ``<img>`` that decoded and that the page raised no
JavaScript error. A static view cannot rebuild ipywidgets, so the widget panel of
``10_ablations`` is checked with a live kernel: Edit > Clear Outputs, Run > Run All Cells in the
page, wait until every cell ran, then the panel's dropdown / sliders / checkboxes / output must be
visible, and choosing another variant must redraw the panel's image. Screenshots go to
``runs/browser/``.

Only ``make test-browser`` runs this (it sets ``DDMI_BROWSER_TEST=1`` and installs the browser);
``make test`` skips it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ddmi_lite import reproduce
from ddmi_lite.notebook import NOTEBOOKS_DIR, REPO_ROOT

pytestmark = pytest.mark.browser
if os.environ.get("DDMI_BROWSER_TEST") != "1":
    pytest.skip("browser test: run it with `make test-browser` (DDMI_BROWSER_TEST=1)", allow_module_level=True)

BROWSER = next((p for p in (shutil.which("chromium-headless-shell"), "/usr/lib/chromium/chromium-headless-shell",
                            shutil.which("chromium")) if p and Path(p).is_file()), None)
if BROWSER is None:
    pytest.skip("no chromium-headless-shell / chromium binary: run `make browser-deps`", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="`make browser-deps` installs playwright")

SCREENSHOTS = REPO_ROOT / "runs" / "browser"
WANTED = ("03_d2c_vae", "10_ablations")
NOTEBOOKS = [n for n in WANTED if (NOTEBOOKS_DIR / f"{n}.py").is_file()]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in the current tab
IMG = f"{NB} .jp-RenderedImage img"
# JupyterLab settings for the test server: render every cell (no virtual scrolling), no news
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def _open(page, base: str, token: str, name: str, *, workspace: str) -> None:
    """Open ``name.ipynb`` alone in a fresh workspace (no tabs restored from an earlier page)."""
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{name}.ipynb?token={token}&reset",
              wait_until="domcontentloaded", timeout=90_000)
    page.wait_for_selector(f"{NB} .jp-Cell", timeout=90_000)
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel").first
    title = tab.inner_text(timeout=30_000)
    assert title.strip() == f"{name}.ipynb", f"the current tab is {title!r}, not {name}.ipynb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    """A folder holding the executed smoke notebooks ``<name>.ipynb``."""
    root = tmp_path_factory.mktemp("lab")
    for name in NOTEBOOKS:
        out = root / "runs" / "smoke" / name
        reproduce.run_notebook(NOTEBOOKS_DIR / f"{name}.py", profile="smoke", out_dir=out,
                               device="cpu", progress=False)
        shutil.copy(out / f"{name}.ipynb", root / f"{name}.ipynb")
    return root


@pytest.fixture(scope="module")
def lab(lab_root, tmp_path_factory):
    """JupyterLab serving ``lab_root`` on 127.0.0.1; yields its base URL and token."""
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path_factory.mktemp("lab_settings")
    for rel, value in LAB_SETTINGS.items():
        plugin, file = rel.rsplit("/", 1)
        (settings / plugin).mkdir(parents=True, exist_ok=True)
        (settings / plugin / file).write_text(json.dumps(value))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path_factory.mktemp("lab_workspaces")))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={lab_root}", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    log = (tmp_path_factory.mktemp("lab_log") / "lab.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=lab_root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")),  # a fresh --user-data-dir
            executable_path=BROWSER, headless=True, args=FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            context.close()


def _expected_outputs(ipynb: Path) -> tuple[int, int]:
    """(PNG figures, widget views) in the executed notebook's outputs; -1 views: no saved state."""
    nb = json.loads(ipynb.read_text())
    images = widgets = 0
    if "application/vnd.jupyter.widget-state+json" not in nb.get("metadata", {}).get("widgets", {}):
        widgets = -1  # widget views need the saved widget state (or a live kernel) to render
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            images += "image/png" in data
            widgets += widgets >= 0 and "application/vnd.jupyter.widget-view+json" in data
    return images, widgets


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_executed_notebook_renders_without_javascript_errors(lab, lab_root, browser_context, name):
    base, token = lab
    n_images, n_widgets = _expected_outputs(lab_root / f"{name}.ipynb")
    assert n_images > 0, f"{name}.ipynb has no figure outputs to check"
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" else None)
    _open(page, base, token, name, workspace=f"static-{name}")
    page.wait_for_function(f"document.querySelectorAll('{IMG}').length >= {n_images}", timeout=60_000)
    page.wait_for_function(f"[...document.querySelectorAll('{IMG}')].every(img => img.complete)", timeout=30_000)
    sizes = page.eval_on_selector_all(IMG,
                                      "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
    page.evaluate(f"document.querySelector('{IMG}').scrollIntoView({{block: 'center'}})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / f"{name}_first_figure.png"), full_page=False)
    widget_text = page.eval_on_selector_all(f"{NB} .jp-OutputArea-output", "els => els.map(e => e.innerText).join('\\n')")
    n_widget_views = page.eval_on_selector_all(f"{NB} .jp-OutputArea-output .jupyter-widgets", "els => els.length")
    if n_widgets > 0 and n_widget_views:
        page.locator(f"{NB} .jp-OutputArea-output .jupyter-widgets").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"{name}_widget.png"), full_page=False)
    page.close()
    assert len(sizes) >= n_images, f"{name}: {len(sizes)} <img> rendered, the notebook has {n_images} figures"
    assert all(w > 0 and h > 0 for w, h in sizes), f"{name}: figures that did not decode: {sizes}"
    assert not errors, f"{name}: JavaScript errors in JupyterLab: {errors}"
    assert "Error displaying widget" not in widget_text


# --------------------------------------------------------------------------- live kernel: the widget panel
WIDGET_NOTEBOOK = "10_ablations"
PANEL_IMAGE = f"{NB} .jupyter-widgets .widget-output .jp-RenderedImage img"


def _panel_image_src(page) -> str:
    return page.eval_on_selector(PANEL_IMAGE, "img => img.complete && img.naturalWidth > 0 ? img.src : ''")


STDERR = f"{NB} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
CELL_STATE = ("() => ({"
              f"prompts: [...document.querySelectorAll('{NB} .jp-CodeCell .jp-InputPrompt')]"
              ".map(e => e.innerText.trim()),"
              f'errors: [...document.querySelectorAll("{STDERR}")]'
              ".map(e => e.innerText).filter(t => /Traceback|Error:/.test(t))})")


def _wait_all_cells_ran(page, n_code: int, *, timeout_s: float) -> None:
    """Poll the prompts until every code cell shows [n]; fail at once on a traceback output."""
    deadline = time.monotonic() + timeout_s
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    while True:
        state = page.evaluate(CELL_STATE)
        if state["errors"]:
            page.screenshot(path=str(SCREENSHOTS / f"{WIDGET_NOTEBOOK}_live_error.png"), full_page=False)
            pytest.fail(f"the notebook raised in the live kernel: {state['errors'][0][-2000:]}")
        if len(state["prompts"]) == n_code and all(re.fullmatch(r"\[\d+\]:?", t) for t in state["prompts"]):
            return
        if time.monotonic() > deadline:
            page.screenshot(path=str(SCREENSHOTS / f"{WIDGET_NOTEBOOK}_live_timeout.png"), full_page=False)
            pytest.fail(f"Run All Cells did not finish in {timeout_s:.0f} s; prompts {state['prompts']}")
        page.wait_for_timeout(1000)


def _menu(page, menu: str, item: str) -> None:
    """Click a JupyterLab main-menu entry, e.g. Run > Run All Cells."""
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=item).first.click()


@pytest.mark.skipif(WIDGET_NOTEBOOK not in NOTEBOOKS, reason=f"notebooks/{WIDGET_NOTEBOOK}.py is absent")
def test_widget_panel_renders_and_reacts_in_a_live_kernel(lab, lab_root, browser_context):
    """Run All Cells in the page: the ipywidgets panel renders and redraws when the variant changes."""
    base, token = lab
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" else None)
    try:
        _open(page, base, token, WIDGET_NOTEBOOK, workspace="live")
        page.wait_for_selector(f"{NB} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        _menu(page, "Edit", "Clear Outputs of All Cells")  # prompts become [ ]: a run fills every one
        page.wait_for_function(f"!document.querySelector('{NB} .jp-CodeCell .jp-OutputArea-output')",
                               timeout=30_000)
        n_code = page.locator(f"{NB} .jp-CodeCell").count()
        _menu(page, "Run", "Run All Cells")
        _wait_all_cells_ran(page, n_code, timeout_s=150)
        page.wait_for_selector(f"{NB} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=30_000)

        panel = page.locator(f"{NB} .jp-OutputArea-output .jupyter-widgets.widget-vbox").first
        panel.wait_for(state="visible", timeout=30_000)
        panel.scroll_into_view_if_needed()
        for cls in ("widget-dropdown", "widget-slider", "widget-checkbox", "widget-output"):
            assert panel.locator(f".{cls}").first.is_visible(), f"panel lacks a visible .{cls}"
        page.wait_for_function(f"(() => {{ const i = document.querySelector({PANEL_IMAGE!r});"
                               " return i && i.complete && i.naturalWidth > 0; })()", timeout=30_000)
        before = _panel_image_src(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{WIDGET_NOTEBOOK}_widget_live.png"), full_page=False)

        select = panel.locator(".widget-dropdown select")
        options = select.locator("option").all_inner_texts()
        current = select.input_value()
        assert len(options) >= 2, f"variant dropdown has options {options}; need two to switch"
        target = next(o for o in options if o != current)
        select.select_option(label=target)
        page.wait_for_function(f"(before => {{ const i = document.querySelector({PANEL_IMAGE!r});"
                               " return i && i.complete && i.naturalWidth > 0 && i.src !== before; })",
                               arg=before, timeout=30_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(SCREENSHOTS / f"{WIDGET_NOTEBOOK}_widget_after_change.png"), full_page=False)
        assert _panel_image_src(page) != before, "the panel image did not change with the variant"
        assert not errors, f"JavaScript errors with the live widget panel: {errors}"
    finally:
        page.close()
