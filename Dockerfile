# Two images from one source tree:
#   docker build --target operator -t deeptrain-operator:0.1.0 .
#   docker build --target trainer  -t deeptrain-trainer:0.1.0 .
# See charts/deeptrain-operator/README.md for GPU builds and loading the images into kind.

# Base of the operator image and of the wheel builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Base of the trainer image. Any image with python3 (3.11+) and its venv module works; point it at
# a CUDA runtime image to add system CUDA libraries (the torch wheels bundle the ones they use).
ARG TRAINER_BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator-wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
# One wheel per image: the API layer, one side, and the `deeptrain` command on top (README, "Layout").
COPY api/ api/
COPY operator/ operator/
COPY cli/ cli/
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS trainer-wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
# The index Job runs `deeptrain index` in this image, hence the command line here too.
COPY api/ api/
COPY trainer/ trainer/
COPY cli/ cli/
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# A numeric UID: the kubelet can only enforce runAsNonRoot against a numeric USER.
RUN groupadd --gid 1000 deeptrain \
 && useradd --uid 1000 --gid 1000 --no-log-init --create-home --home-dir /home/deeptrain deeptrain \
 && python -m venv /opt/venv
COPY --from=operator-wheel /wheels /wheels
RUN pip install "$(ls /wheels/deeptrain_operator-*.whl)[operator]" && rm -rf /wheels
USER 1000:1000
WORKDIR /home/deeptrain
# 8080: Prometheus metrics; 8081: kopf's /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "deeptrain_operator"]

# ---------------------------------------------------------------------------------------------
FROM ${TRAINER_BASE_IMAGE} AS trainer
# torch is installed on its own, before the project, so the `trainer` extra's torch range is
# already satisfied and pip never swaps in another build. TORCH_PIP_ARGS picks the wheel index
# (a CPU-only or a specific CUDA build), e.g. --build-arg TORCH_PIP_ARGS="--index-url <index>".
ARG TORCH_VERSION=2.13.0
ARG TORCH_PIP_ARGS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --gid 1000 deeptrain \
 && useradd --uid 1000 --gid 1000 --no-log-init --create-home --home-dir /home/deeptrain deeptrain \
 && python3 -m venv /opt/venv \
 && pip install ${TORCH_PIP_ARGS} "torch==${TORCH_VERSION}"
COPY --from=trainer-wheel /wheels /wheels
# The trainer extra brings PyAV, whose wheel carries FFmpeg and its codecs: video needs no system package.
RUN pip install "$(ls /wheels/deeptrain_operator-*.whl)[trainer,data]" && rm -rf /wheels
USER 1000:1000
WORKDIR /home/deeptrain
# The operator sets the pod's command; this default runs one node of a job from its config file.
CMD ["torchrun", "--max-restarts=0", "-m", "deeptrain_trainer"]
