# The two commands of the README. Each creates .venv if needed and installs everything first.
#   make bench   -> runs the demo benchmark (or the profile you configure) and writes the report
#   make test    -> runs the test suite, then a slice of the demo grid gated on the committed baseline
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.radbench-installed
JOBS   ?= 2

.PHONY: bench test install clean-cache

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "radbench: installing into $(VENV) (torch, timm, ...) - first time takes a few minutes"
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[test]"
	@touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -m "not throughput" -n $(JOBS) --dist loadgroup -p no:cacheprovider $(ARGS); \
	status=$$?; echo "radbench report: $(CURDIR)/reports/latest/index.html"; exit $$status

# The gate: the NIH and Montgomery cells of the demo grid (every protocol, every model that applies)
# against benchmarks/baselines/demo.json; any metric 0.05 below its baseline fails the run.
GATE_CELLS ?= nih or mc
test: $(STAMP)
	$(BIN)/lint-imports            # the layers of radbench_core (pyproject.toml [tool.importlinter])
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -n $(JOBS) -p no:cacheprovider $(ARGS)
	$(BIN)/python -m pytest benchmarks -m "not throughput" -k "$(GATE_CELLS)" -n $(JOBS) --dist loadgroup \
	    -p no:cacheprovider -q --radbench-baseline benchmarks/baselines/demo.json --radbench-fail "*:0.05"

clean-cache:
	rm -rf $${RADBENCH_CACHE_DIR:-$$HOME/.cache/radbench}
