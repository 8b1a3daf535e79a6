# make demo | make test | make bench — each creates .venv (CPU PyTorch first) when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.amloop-installed
DEMO_HOME := build/demo
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/build/prefect

.PHONY: install system-deps demo test bench lint clean prior-cuzr prior-li prior-feconimobo

install: $(STAMP)

# Debian packages the tests use for real: PostgreSQL (a throw-away server on 127.0.0.1),
# GPAW with its PAW setups (the DFT oracle) and Chromium (the HTML report, headless). Installed when missing and apt-get is usable;
# otherwise their tests skip with the install command (and fail under CI).
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	/usr/bin/python3 -c "import gpaw" >/dev/null 2>&1 || missing="$$missing gpaw"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "note: install$$missing (Debian packages) to run their tests"; fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the CPU build lies on disk here; an unpinned torch would pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,postgres,dask]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_HOME)
	AMLOOP_HOME=$(DEMO_HOME) $(VENV)/bin/amloop init examples/nifecr.yaml
	AMLOOP_HOME=$(DEMO_HOME) $(VENV)/bin/amloop inject tests/data/measurements.csv
	AMLOOP_HOME=$(DEMO_HOME) OMP_NUM_THREADS=1 $(VENV)/bin/amloop run nifecr --iterations 3
	AMLOOP_HOME=$(DEMO_HOME) $(VENV)/bin/amloop history
	AMLOOP_HOME=$(DEMO_HOME) $(VENV)/bin/amloop report nifecr
	@echo "demo: a 3-iteration Ni-Fe-Cr campaign (seed set, BoTorch proposals, tiny Cond-CDVAE,"
	@echo "      quality + energy gate, LAMMPS 2NN-MEAM bulk modulus) in $(DEMO_HOME)/nifecr;"
	@echo "      report: $(DEMO_HOME)/nifecr/report/report.html"

test: lint system-deps
	$(VENV)/bin/pytest -q -m "not gpu"

# The Cu-Zr generator prior that examples/cuzr-glass.yaml starts from (issue 27): 16
# melt-quenches of 54 atoms with the Mendelev EAM, their relaxed snapshots, the tiny
# Cond-CDVAE trained on them; resumable, ~10 min on 2 cores. Committed, card.md says its cost.
prior-cuzr: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/amloop generator pretrain examples/cuzr-glass.yaml \
		-o examples/priors/cuzr-glass --compositions 16 --epochs 100

# The CHGNet priors of the Li-Si-O and Fe-Co-Ni-Mo-B-O examples: melt-quenches at each YAML's
# protocol (20- and 10-atom cells, CHGNet MD), a snapshot every 0.08 ps below 1200 K relaxed
# with CHGNet; ~40 min on one core each (card.md: the measured cost). Committed.
prior-li: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/amloop generator pretrain examples/li-amorphous-conductor.yaml \
		-o examples/priors/li-amorphous-conductor --compositions 6 --every-ps 0.08 --below-K 1200 --epochs 100

prior-feconimobo: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/amloop generator pretrain examples/feconimobo-oer.yaml \
		-o examples/priors/feconimobo-oer --compositions 10 --every-ps 0.08 --below-K 1200 --epochs 100

bench: $(STAMP)
	$(PY) -m benchmarks.oracles
	$(PY) -m benchmarks.generator
	$(PY) -m benchmarks.acquisition
	$(PY) -m benchmarks.discovery
	$(PY) -m benchmarks.discovery_amorphous
	$(PY) -m benchmarks.mlp
	$(PY) -m benchmarks.structure_fidelity --compositions 3 --cells 2 \
		--output build/bench/structure-fidelity-ci.md
	$(PY) -m benchmarks.bad_inputs
	$(PY) -m benchmarks.chaos
	$(PY) -m benchmarks.scale

# ruff on everything; mypy on every package as amloop.<folder>, through a tree of links
TYPECHECK := build/typecheck
PACKAGES := state loop oracles generator acquisition
lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/amloop
	ln -s $(CURDIR)/amloop/*.py $(TYPECHECK)/amloop/
	for p in $(PACKAGES); do ln -s $(CURDIR)/$$p $(TYPECHECK)/amloop/$$p; done
	cd $(TYPECHECK) && MYPYPATH=. $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml \
		--cache-dir $(CURDIR)/.mypy_cache

clean:
	rm -rf build $(VENV)
