# The d2q worker image. PyTorch wheels from PyPI for Linux x86-64 carry their
# own CUDA libraries, so the image needs the NVIDIA container runtime on the
# host but no CUDA base image.
# NOTE: written for docker-compose.yml and checked by the compose loader only;
# no Docker engine was available to build it.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/cache/huggingface

WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY mappings ./mappings
# Editable, because d2q reads mappings/ from its source tree.
RUN pip install -e '.[metrics]' && mkdir -p /cache && chown nobody /cache

# The metrics, /healthz and /readyz port.
EXPOSE 9310
USER nobody
CMD ["d2q", "run"]
