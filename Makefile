# The two commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test venv proto bench bench-psi bench-lr spu-venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "fedcredit needs Python >= 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/fedcredit demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate the committed gRPC/protobuf code after editing proto/fedcredit/v1/*.proto.
proto: $(STAMP)
	$(BIN)/python -m fedcredit.runtime.protogen

bench: $(STAMP)
	$(BIN)/python benchmarks/paillier_bench.py

# SecretFlow SPU in its own venv (it pins numpy<2): the SPU columns of psi_bench.py.
SPU_VENV := .venv-spu
$(SPU_VENV)/.installed-stamp: benchmarks/requirements-spu.txt
	$(PYTHON) -m venv $(SPU_VENV)
	$(SPU_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SPU_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-spu.txt
	touch $@

spu-venv: $(SPU_VENV)/.installed-stamp

# Every PSI column at 2^17 and 2^20: fedcredit ECDH and OT, SPU ECDH, KKRT16 and RR22, OpenMined.
# SPU ships wheels for CPython 3.10-3.11 only: where it cannot install, its columns are skipped.
bench-psi: $(STAMP)
	$(MAKE) spu-venv || echo "SPU could not be installed here: psi_bench.py skips its columns"
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/psi_bench.py --sizes 17,20 --json psi_bench.json $(BENCH_ARGS)

# Every LR column on default_credit (~15 minutes, SPU adds a few): fedcredit's, and SPU SS-LR (SEMI2K, CHEETAH; two processes).
# Where SPU cannot install, lr_bench.py skips its columns with a note.
bench-lr: $(STAMP)
	$(MAKE) spu-venv || echo "SPU could not be installed here: lr_bench.py skips its columns"
	$(BIN)/python benchmarks/lr_bench.py --json lr_bench.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(SPU_VENV) build *.egg-info fedcredit-demo
