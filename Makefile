# vlm-recipes: every target sets up its own virtual environment first (idempotent).
#   make demo    # set up + run the offline SFT LoRA recipe (the main job)
#   make test    # set up + run the test suite (make test-fast: unit + integration tiers only)
#   make docs    # set up + build the documentation site (docs/ -> site/, MkDocs, offline)
VENV ?= .venv
PY := $(VENV)/bin/python
ACCELERATE_BIN := $(VENV)/bin/accelerate
RECIPE ?= sft
CONFIG ?=
ACCELERATE ?= cpu
ARGS ?=
LAUNCH_ARGS ?=

RECIPES := sft sft_lora dpo mpo grpo rloo clip_train vit_baseline blip_train

.PHONY: setup browser demo demo-web test test-fast test-slow docs lint format train push merge grounding clip_zero_shot blip_zero_shot tiny-models bench clean help preflight plan $(RECIPES)

help:
	@grep -E '^[a-z_-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -e ".[dev,tracking]"
	touch $@

setup: $(VENV)/.installed ## create .venv and install the package with its dev tools and the trackers (trackio, wandb)

demo: setup ## the main job: offline SFT LoRA on a tiny SmolVLM, accuracy before/after (recipes/sft_lora.py)
	$(ACCELERATE_BIN) launch --config_file accelerate_configs/cpu.yaml recipes/sft_lora.py $(ARGS)

# One OpenMP thread per process unless OMP_NUM_THREADS says otherwise: the tiny models are per-call overhead, and the
# multi-process tests start two ranks, which at two threads each oversubscribe a 2-core machine (docs/reliability.md).
TEST_THREADS := $(or $(OMP_NUM_THREADS),1)
# One pytest worker per core (pytest-xdist), each at TEST_THREADS threads: the tiny bases build side by side and the
# learning proofs share the cores. TEST_WORKERS=0 runs in one process (what to use to read one test's output).
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST := OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

# The web demo's browser tests drive Debian's Chromium (Playwright's own browser download does not work offline).
# Idempotent: nothing to do when it is there; without apt-get as root, the browser tests skip and say why.
CHROMIUM := /usr/bin/chromium
browser: ## install Debian's Chromium for the web demo's browser tests (apt-get, as root; skipped when present)
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser tests (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
			|| echo "apt-get could not install chromium: the browser tests (tests/test_demo.py) will skip."; \
	else echo "No $(CHROMIUM), and no apt-get as root to install it: the browser tests (tests/test_demo.py) will skip."; fi

test: setup browser ## the default test suite (offline, CPU): every tier, the learning proofs included
	$(PYTEST) -q --durations=15

test-fast: setup ## the fast tier for your own loop: unit + integration tests (no pre-trained tiny model is built)
	$(PYTEST) -q -m "not slow and not learning" --durations=10

test-slow: setup ## long end-to-end runs only
	$(PYTEST) -q -m slow

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev,tracking,docs]"
	touch $@

docs: $(VENV)/.docs-installed ## build the documentation site into site/ (MkDocs, offline; --strict: a broken link fails)
	$(VENV)/bin/mkdocs build --strict --site-dir site

lint: setup ## ruff
	$(VENV)/bin/ruff check vlm_recipes recipes tests benches && $(VENV)/bin/ruff format --check vlm_recipes recipes tests benches

format: setup
	$(VENV)/bin/ruff check --fix vlm_recipes recipes tests benches && $(VENV)/bin/ruff format vlm_recipes recipes tests benches

train: setup ## any recipe: make train RECIPE=sft CONFIG=... ACCELERATE=zero2 LAUNCH_ARGS="--num_processes 4"
	$(ACCELERATE_BIN) launch --config_file accelerate_configs/$(ACCELERATE).yaml $(LAUNCH_ARGS) recipes/$(RECIPE).py \
		$(if $(CONFIG),--config $(CONFIG)) $(ARGS)

$(RECIPES): setup ## one recipe, offline default unless CONFIG=...: make dpo, make grpo CONFIG=recipes/configs/tiny-qwen2-vl/grpo.yaml
	$(ACCELERATE_BIN) launch --config_file accelerate_configs/$(ACCELERATE).yaml $(LAUNCH_ARGS) recipes/$@.py \
		$(if $(CONFIG),--config $(CONFIG)) $(ARGS)

GROUNDING_START := outputs/sft_grounding_start-tiny-smolvlm

grounding: setup ## offline grounding chain: a short SFT start (450 steps), merged, then GRPO with the iou reward
	$(ACCELERATE_BIN) launch --config_file accelerate_configs/cpu.yaml recipes/sft.py \
		--config recipes/configs/tiny-smolvlm/sft_grounding.yaml --max_steps 450 --output_dir $(GROUNDING_START)
	$(PY) recipes/merge_adapter.py --adapter $(GROUNDING_START)
	$(ACCELERATE_BIN) launch --config_file accelerate_configs/cpu.yaml recipes/grpo.py \
		--config recipes/configs/tiny-smolvlm/grpo_grounding.yaml --model_name_or_path $(GROUNDING_START)-merged

clip_zero_shot: setup ## CLIP zero-shot tasks, offline default unless CONFIG=...; ARGS="--tasks search --search_folder <dir>"
	$(PY) recipes/clip_zero_shot.py $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

blip_zero_shot: setup ## BLIP captioning / VQA / ITM retrieval, offline default unless CONFIG=...; ARGS="--image_dir <dir>"
	$(PY) recipes/blip_zero_shot.py $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

tiny-models: setup ## build (or reuse) the cached offline tiny checkpoints
	$(PY) -m vlm_recipes.tiny build
	$(PY) -m vlm_recipes.tiny build --stage sft
	$(PY) -c "from vlm_recipes.tiny import resolve; print(resolve('tiny:clip'))"
	$(PY) -c "from vlm_recipes.tiny import resolve; print(*(resolve(f'tiny:blip{s}') for s in ('', '-itm', '-vqa')))"

preflight: setup ## check a config's data against its processor: make preflight CONFIG=<yaml> [ARGS="--write_clean clean.jsonl"]
	$(PY) -m vlm_recipes.launch.preflight --config $(or $(CONFIG),recipes/configs/tiny-smolvlm/sft_lora.yaml) $(ARGS)

GPU ?=
NPROC ?= 1
plan: setup ## predicted peak memory per device, and what fits: make plan CONFIG=<yaml> [GPU=80] [ACCELERATE=zero3 NPROC=8]
	$(PY) -m vlm_recipes.launch.plan --config $(or $(CONFIG),recipes/configs/tiny-smolvlm/sft_lora.yaml) \
		--accelerate $(ACCELERATE) --num_processes $(NPROC) $(if $(GPU),--gpu $(GPU)) $(ARGS)

bench: setup ## collator throughput and default-run benchmarks
	$(PY) benches/bench_collator.py
	OMP_NUM_THREADS=1 $(PY) benches/bench_data_pipeline.py
	$(PY) benches/bench_sft_default.py
	$(PY) benches/bench_video_tokens.py

demo-web: setup ## web demo, base vs fine-tuned side by side: make demo-web RUN=outputs/<run> [PORT=7860] (127.0.0.1 only)
	$(PY) recipes/demo.py --run $(or $(RUN),outputs/sft_lora-tiny-smolvlm) --port $(or $(PORT),7860) $(ARGS)

push: setup ## push a finished run: make push RUN=outputs/sft_lora-tiny-smolvlm REPO=you/name [PRIVATE=1]
	$(PY) -m vlm_recipes.hub --folder $(RUN) --repo_id $(REPO) $(if $(PRIVATE),--private)

merge: setup ## merge a LoRA adapter into its base: make merge RUN=outputs/sft_lora-tiny-smolvlm [ARGS="--dtype bfloat16"]
	$(PY) recipes/merge_adapter.py --adapter $(RUN) $(ARGS)

clean:
	rm -rf outputs site .pytest_cache .ruff_cache

# -- inference and evaluation -----------------------------------------------------------------------------------------
# One process each (no accelerate launch needed); CONFIG=<yaml> picks another config, ARGS=... adds overrides.
.PHONY: generate evaluate benchmark

generate: setup ## inference, offline default unless CONFIG=...: make generate ARGS="--image photo.jpg --prompt 'What is this?'"
	$(PY) recipes/generate.py $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

evaluate: setup ## compare models/adapters, before/after report + gallery: make evaluate ARGS="--adapter_paths outputs/sft_lora-tiny-smolvlm"
	$(PY) recipes/evaluate_models.py $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

benchmark: setup ## public benchmarks + leaderboard, offline stand-ins unless CONFIG=...: make benchmark ARGS="--limit 20"
	$(PY) recipes/benchmark.py $(if $(CONFIG),--config $(CONFIG)) $(ARGS)
