# ddmi_lite: `make reproduce` runs every notebook and writes runs/$(PROFILE)/report.md;
# `make test` is what CI runs. Both install everything into .venv from nothing first.

PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu
ONLY ?=
DEVICE ?= auto

.PHONY: all install data test reproduce figures lab clean distclean browser-deps test-browser

all: test

# torch goes first with its exact pin: pip then keeps it (the local CPU wheel) instead of
# resolving a multi-GB CUDA build for the package's dependencies.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[notebooks,dev]"
	touch $@

install: $(STAMP)

data: install
	$(PY) -m ddmi_lite data

test: install data
	$(PY) -m pytest -q

reproduce: install data
	$(PY) -m ddmi_lite reproduce --profile $(PROFILE) --device $(DEVICE) $(if $(ONLY),--only $(ONLY))

# Double-clicking a .py notebook opens it as a notebook: .jupyter/labconfig sets the default
# viewer for Python files to jupytext's "Jupytext Notebook" (right-click, Open With, Editor
# still shows the text). Saving writes the paired, git-ignored .ipynb (jupytext.toml).
lab: install
	JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --FileContentsManager.preferred_dir=notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# The end-to-end browser test (tests/browser, skipped by `make test`): JupyterLab on 127.0.0.1
# driven by Debian's headless Chromium through the Python package playwright (no browser download).
browser-deps: install
	command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 || { \
	  apt-get update -qq && { apt-get install -y -qq chromium-headless-shell || apt-get install -y -qq chromium; }; }
	$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install -q playwright

test-browser: browser-deps data
	DDMI_BROWSER_TEST=1 $(PY) -m pytest -q tests/browser

# The README's figures, copied from a finished `make reproduce` (PROFILE=cpu) run.
FIGURES := 01_basis_fields/q2_fields_vs_fourier.png:fields_vs_fourier \
	02_coarse_to_fine/reconstructions.png:cfc_reconstructions 03_d2c_vae/scales_spectrum.png:d2c_vae_scales_spectrum \
	03_d2c_vae/reconstructions.png:d2c_vae_reconstructions 03_d2c_vae/multires.png:d2c_vae_multires \
	03_d2c_vae/fields_trained.png:d2c_vae_fields 08_videos/reconstructions.png:video_reconstructions \
	08_videos/error_map.png:video_error_map 09_nerf/novel_views.png:nerf_novel_views \
	10_ablations/ablation_bars.png:ablation_bars 10_ablations/training_curves.png:ablation_curves 11_performance/bench.png:bench
figures:
	@for pair in $(FIGURES); do src=runs/$(PROFILE)/$${pair%%:*}; dst=docs/figures/$${pair##*:}.png; \
	  test -f $$src || { echo "missing $$src: run make reproduce PROFILE=$(PROFILE) first" >&2; exit 1; }; \
	  cp $$src $$dst && echo "$$src -> $$dst"; done

clean:
	rm -rf runs .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# also the virtual environment and the prepared data caches (git-ignored files under data/)
distclean: clean
	rm -rf $(VENV) *.egg-info
	git clean -fdXq -- data 2>/dev/null || true
