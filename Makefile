# The two commands of the README. Each creates .venv if needed and installs everything first.
#   make bench   -> runs the demo benchmark (or the profile you configure) and writes the report
#   make test    -> runs the test suite, then a slice of the demo grid gated on the committed baseline
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# make bench installs radbench and what a benchmark run needs; make test adds the test extra
# (the official libraries that write checkpoint layouts, MLflow, Playwright, MONAI, ...)
STAMP  := $(VENV)/.radbench-installed
TEST_STAMP := $(VENV)/.radbench-test-installed
JOBS   ?= 2

.PHONY: bench test install clean-cache mutants

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "radbench: installing into $(VENV) (torch, timm, ...) - first time takes a few minutes"
	$(BIN)/python -m pip install --disable-pip-version-check -q -e .
	@touch $(STAMP)

$(TEST_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "radbench: installing into $(VENV) with the test extra - first time takes a few minutes"
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[test]"
	@touch $(STAMP) $(TEST_STAMP)

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -m "not throughput" -n $(JOBS) --dist loadgroup -p no:cacheprovider $(ARGS); \
	status=$$?; echo "radbench report: $(CURDIR)/reports/latest/index.html"; exit $$status

# The gate: the NIH and Montgomery cells of the demo grid (every protocol, every model that applies)
# against benchmarks/baselines/demo.json; any metric 0.05 below its baseline fails the run.
GATE_CELLS ?= nih or mc
# The tests: each worker takes whole modules, the slowest first (tests/conftest.py SLOWEST_FIRST,
# docs/testing.md "Test time"); --durations=25 prints the 25 slowest tests of the run.
test: $(TEST_STAMP)
	$(BIN)/lint-imports            # the layers of radbench_core (pyproject.toml [tool.importlinter])
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -n $(JOBS) --dist loadfile --no-loadscope-reorder \
	    -p no:cacheprovider --durations=25 $(ARGS)
	$(BIN)/python -m pytest benchmarks -m "not throughput" -k "$(GATE_CELLS)" -n $(JOBS) --dist loadgroup \
	    -p no:cacheprovider -q --radbench-baseline benchmarks/baselines/demo.json --radbench-fail "*:0.05"

# Mutation testing (mutmut 3) of the modules that compute numbers, one module at a time against the
# tests that target it; results in reports/mutants/<module>.txt (docs/testing.md). Slow: run one
# module with `make mutants MUTANT=eval/multiple.py`, the full list on a free machine.
MUTANT_TARGETS ?= \
    eval/multiple.py=tests/test_multiple.py \
    eval/metrics.py=tests/test_metrics_messages.py,tests/test_metrics_mutants.py,tests/test_metrics.py,tests/test_cell_intervals.py,tests/test_planted_bugs.py,$\
--deselect,tests/test_cell_intervals.py::test_patient_ci_covers_near_95_percent_and_the_image_ci_does_not,$\
--deselect,tests/test_cell_intervals.py::test_index_and_weighted_patient_bootstrap_agree_in_distribution \
    eval/paired.py=tests/test_paired_exact.py,tests/test_patient_bootstrap_fast.py,tests/test_paired_errors.py,tests/test_stats_paired.py,tests/test_planted_bugs.py,tests/test_significance_power.py \
    eval/delong.py=tests/test_delong.py,tests/test_stats_paired.py,-k,delong \
    gate/compare.py=tests/test_gate_rules_exact.py,tests/test_compare_mutants.py,tests/test_gating.py,tests/test_gate_paths.py,tests/test_gating_noise.py,tests/test_planted_bugs.py \
    data/datasets/splits.py=tests/test_splits_files.py,tests/test_splits_mutants.py,tests/test_splits.py,tests/test_planted_bugs.py \
    models/pos_embed.py=tests/test_pos_embed.py,tests/test_pos_embed_rules.py \
    protocols/decoders.py=tests/test_decoders_exact.py,tests/test_decoders_mutants.py \
    eval/cell_intervals.py=tests/test_cell_intervals_exact.py,tests/test_cell_intervals.py,tests/test_patient_bootstrap_fast.py,$\
--deselect,tests/test_cell_intervals.py::test_patient_ci_covers_near_95_percent_and_the_image_ci_does_not,$\
--deselect,tests/test_cell_intervals.py::test_index_and_weighted_patient_bootstrap_agree_in_distribution \
    eval/weighted_metrics.py=tests/test_weighted_metrics_exact.py,tests/test_patient_bootstrap_fast.py,tests/test_stats_paired.py,tests/test_block_bootstrap_cache.py,tests/test_cell_intervals.py,tests/test_paired_exact.py,$\
--deselect,tests/test_cell_intervals.py::test_patient_ci_covers_near_95_percent_and_the_image_ci_does_not,$\
--deselect,tests/test_cell_intervals.py::test_index_and_weighted_patient_bootstrap_agree_in_distribution,$\
--deselect,tests/test_stats_paired.py::test_paired_bootstrap_rejects_at_about_alpha_when_there_is_no_effect \
    gate/paired_gate.py=tests/test_gate_rules_exact.py,tests/test_gating_noise.py \
    protocols/losses.py=tests/test_losses.py,tests/test_switch_loss.py,tests/test_linear.py,tests/test_segmentation.py,-k,loss
MUTANT ?=
mutants: $(TEST_STAMP)
	@for target in $(MUTANT_TARGETS); do \
	  module=$${target%%=*}; tests=$${target#*=}; \
	  if [ -n "$(MUTANT)" ] && [ "$$module" != "$(MUTANT)" ]; then continue; fi; \
	  echo "radbench: mutating radbench_core/$$module against $$tests"; \
	  { printf '[mutmut]\nsource_paths=radbench_core\nonly_mutate=radbench_core/%s\n' "$$module"; \
	    printf 'also_copy=\n    fixtures\n    conftest.py\n    benchmarks\n    tests\n'; \
	    printf 'pytest_add_cli_args_test_selection=\n'; echo "$$tests" | tr ',' '\n' | sed 's/^/    /'; \
	    printf 'pytest_add_cli_args=\n    -p\n    no:cacheprovider\n    -n\n    0\n    -q\n    --radbench-no-report\n'; } > setup.cfg; \
	  rm -rf mutants; OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children $(JOBS); \
	  mkdir -p reports/mutants; $(BIN)/mutmut results --all true > reports/mutants/$$(echo $$module | tr '/' '_').txt; \
	  rm -f setup.cfg; \
	done

clean-cache:
	rm -rf $${RADBENCH_CACHE_DIR:-$$HOME/.cache/radbench}
