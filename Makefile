# lineage-audit: the two commands (see README.md) and their parts.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export LINEAGE_AUDIT_CORPUS ?= $(abspath ../shared/corpus)
export LINEAGE_AUDIT_OL_SPEC ?= $(abspath ../shared/openlineage-spec)

.PHONY: demo test install services services-down bench clean

$(BIN)/lineage-audit: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

install: $(BIN)/lineage-audit

# The demo leaves its audit config, ./lineage-audit.yml, which audit and report read by default.
AUDIT :=

## Command 1: the main job end to end on embedded defaults: both pipelines offline into
## DuckDB with lineage in the embedded store, the churn feature table, its audit and report.
demo: install
	$(BIN)/lineage-audit demo --out out/demo
	$(BIN)/lineage-audit report $(AUDIT) -D features.churn_features --format html -o out/demo/audit-report.html
	$(BIN)/lineage-audit report $(AUDIT) -D features.churn_features --format md -o out/demo/audit-report.md
	@rc=0; $(BIN)/lineage-audit audit $(AUDIT) || rc=$$?; \
	  if [ $$rc -gt 1 ]; then exit $$rc; fi; \
	  echo "audit exit code $$rc (1: a finding at or above --fail-on; the demo's feature table has a real one)"

## Command 2: install what the tests need, start the real services, run every test, stop them.
test: install
	bash scripts/test.sh

services:
	bash scripts/postgres.sh start
	bash scripts/chromium.sh

services-down:
	bash scripts/postgres.sh stop

bench: install
	$(BIN)/python bench/sql_lineage.py

clean:
	rm -rf $(VENV) out .lineage test-output *.egg-info
