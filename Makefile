# Two entry points: `make book` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu: install torch's CPU build from PyTorch's index
# first (on Linux, PyPI's torch wheel is the multi-GB CUDA build)
TORCH_INDEX ?=
# Progress bars are for live notebooks; built pages and test logs stay clean.
export TFUL_NO_PROGRESS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# numba (UMAP) compiles its functions once into this folder instead of once per process
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba

.PHONY: book test venv student grade sweep checkpoints clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet torch==2.13.0 --index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	# chapter 12's anomaly benchmark ships inside aeon's wheel; it is read from the zip, never imported
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: aeon==1.6.0 -d $(VENV)/share/tful-data
	@touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(PY) -m tools.run_notebooks notebooks/*.ipynb
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The book is in $(CURDIR)/_build/html; open $(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

# Not part of `make test`: every training chapter from an empty cache, for seed offsets 0, 1, 2 on one
# training thread and for 2 and 4 threads (five runs; on 2 cores the recorded runs took 5 to 37 minutes
# each, the longest on a machine shared with other work; see book/data/sweep.json);
# writes book/data/sweep.json, shown on the Results page.
sweep: $(STAMP)
	$(PY) -m tools.sweep

# Not part of `make test`: train every full recipe on one thread per recipe, two recipes at a time,
# and write checkpoints/<name>.safetensors with its card <name>.json (models.load ships them).
# `make checkpoints NAME=gan` retrains one. The seven recipes took 15 minutes of CPU time in all
# (each card in checkpoints/ records its own); DEC trains after the encoder it starts from.
checkpoints: $(STAMP)
	$(PY) -m tools.checkpoints $(if $(NAME),--name $(NAME))

student: $(STAMP)
	$(PY) -m classroom.student notebooks/*.ipynb --out _build/student

# Grade a folder of submitted student copies, e.g.
#   make grade ASSIGNMENT=_build/student/01_attention_from_scratch/assignment.json SUBMISSIONS=subs OUT=grades
# (set TFUL_GRADER_SECRET; add MANUAL=grades/rubric.csv once the rubric is filled in; submissions run
# under bubblewrap where it is installed, else in the scrubbed fallback, which the grader says)
grade: $(STAMP)
	$(PY) -m classroom.grade --assignment $(ASSIGNMENT) $(SUBMISSIONS) --out $(OUT) $(if $(MANUAL),--manual $(MANUAL))

clean:
	rm -rf _build
