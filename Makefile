# The two commands a reader needs: `make book` and `make test`. Each installs first (once).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Pinned so that pip takes a wheel it already has (see README, "Installing PyTorch"). Override with
# e.g. `make install TORCH="torch==2.13.0 --index-url <your CUDA wheel index>"`.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.sdelab-installed
JOBS ?= 2
BOOK_FLAGS ?= -W -n --keep-going

.PHONY: help install test unit notebooks book-check browser-test book book-refs chapter pdf linkcheck lab bench checkpoints clean

help:
	@echo "make book     install, execute the notebooks that changed (all when sdelab/ changed) and build the HTML book into _build/html"
	@echo "make test     install, run unit tests, notebooks under nbval (quick mode) and a strict book build"
	@echo "make chapter NB=book/part1/sde_basics.ipynb   strict quick-mode build of one chapter into _build/chapter"
	@echo "make book-refs  strict build of every page without executing notebooks (checks links between chapters)"
	@echo "make pdf      the whole book as one PDF (needs xelatex and latexmk, e.g. Debian's texlive-xetex)"
	@echo "make linkcheck  check every external link of the book (needs the network)"
	@echo "make lab      open JupyterLab on book/"
	@echo "make checkpoints  retrain the shipped models into sdelab/weights (ONLY=mnist_unet for one; a GPU is advised for it)"
	@echo "make bench    speed and memory benchmark (python -m sdelab bench)"
	@echo "make clean    remove build outputs (keeps .venv)"

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

test: unit notebooks book-check

# $(JOBS) workers share the cores: one thread each, or OpenMP oversubscription slows torch down many times.
unit: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 SDELAB_QUICK=1 $(BIN)/pytest -n $(JOBS) -q --durations=10 tests

# SDELAB_STATIC=1: headless kernels (nbval, nbclient) can wait forever on live widget messages, so the
# notebooks run with the static players here; tests/test_widgets.py covers the live sliders.
notebooks: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 SDELAB_QUICK=1 SDELAB_STATIC=1 $(BIN)/pytest -n $(JOBS) --dist loadfile -q --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider book/

# After the build: checks on the HTML, then every page in headless Chromium, offline (tests/test_browser.py;
# SDELAB_REQUIRE_BUILD=1 makes a missing Chromium or Playwright a failure, never a skip).
book-check: install
	SDELAB_QUICK=1 SDELAB_STATIC=1 $(PY) tools/book_cache.py force -- $(BOOK_FLAGS)
	SDELAB_REQUIRE_BUILD=1 $(BIN)/pytest -q -p no:cacheprovider tests/test_built_html.py tests/test_browser.py

# The browser test on an existing build (HTML=<dir> for another one); skips with a message without Chromium.
HTML ?= _build/html
browser-test: install
	SDELAB_BROWSER=1 SDELAB_HTML=$(HTML) $(BIN)/pytest -q -rs -n $(JOBS) -p no:cacheprovider tests/test_browser.py

# Incremental: tools/book_cache.py executes only the notebooks whose code changed, or all of them when sdelab/
# changed (a jupyter-cache folder per package hash and mode), then builds the HTML from that cache.
# Threads: OMP_NUM_THREADS if set, else sdelab.utils.num_threads() (half the cores, 1 on a 2-core machine).
NUM_THREADS = $${OMP_NUM_THREADS:-$$($(PY) -c "import sdelab.utils as u; print(u.num_threads())")}
book: install
	t=$(NUM_THREADS) && OMP_NUM_THREADS=$$t MKL_NUM_THREADS=$$t SDELAB_STATIC=1 $(PY) tools/book_cache.py build -- $(BOOK_FLAGS)
	@echo "The book is at file://$(CURDIR)/_build/html/index.html; now every page in headless Chromium (make browser-test):"
	SDELAB_BROWSER=1 SDELAB_HTML=_build/html $(BIN)/pytest -q -rs -n $(JOBS) -p no:cacheprovider tests/test_browser.py

# Every page of the book, strict, without executing any notebook (about a minute): checks cross-references
# between chapters (references to figures that only cell outputs draw are expected to be undefined here). REFS_OUT lets several builds run side by side.
REFS_OUT ?= _build/refs
book-refs: install
	$(PY) tools/book_refs.py $(REFS_OUT)

chapter: install
	@test -n "$(NB)" || { echo "usage: make chapter NB=book/<part>/<name>.ipynb"; exit 2; }
	@toc=$$(mktemp --suffix=.yml) && printf 'format: jb-book\nroot: %s\n' "$(basename $(NB))" > $$toc && \
	SDELAB_QUICK=1 SDELAB_STATIC=1 $(PY) tools/book_cache.py force -- --toc $$toc --path-output _build/chapter/$(notdir $(basename $(NB))) $(BOOK_FLAGS); \
	rc=$$?; rm -f $$toc; exit $$rc

pdf: install
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null || { echo "make pdf needs xelatex and latexmk (Debian/Ubuntu: apt-get install texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk fonts-freefont-otf)"; exit 2; }
	t=$(NUM_THREADS) && OMP_NUM_THREADS=$$t MKL_NUM_THREADS=$$t SDELAB_STATIC=1 $(PY) tools/book_cache.py build -- --builder pdflatex
	@echo "The PDF is at $(CURDIR)/_build/latex/sde-diffusion-book.pdf"

linkcheck: install
	SDELAB_QUICK=1 SDELAB_STATIC=1 $(PY) tools/book_cache.py force -- --builder linkcheck

# LAB_FLAGS: extra flags, e.g. LAB_FLAGS="--no-browser --port 8890"; --allow-root is added when run as root.
LAB_FLAGS ?=
lab: install
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install -q jupyterlab
	t=$(NUM_THREADS) && OMP_NUM_THREADS=$$t MKL_NUM_THREADS=$$t $(BIN)/jupyter lab book/ $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_FLAGS)

bench: install
	$(PY) -m sdelab bench

checkpoints: install
	$(PY) -m sdelab checkpoints --directory sdelab/weights $(if $(ONLY),--only $(ONLY),)

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
