# LIVI on the official Airflow 3 image: the library, its models and the DAGs in one image.
FROM apache/airflow:3.3.2-python3.11

USER root
# Speech engines of the song generators (espeak-ng, flite, Festival + voices); libsndfile: audio decoding.
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts libsndfile1 \
 && rm -rf /var/lib/apt/lists/*
USER airflow

# torch first, pinned and CPU-only: an unpinned resolve pulls a multi-GB CUDA build. The GPU worker
# image (compose profile "gpu") is built with TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch==2.13.0 --index-url "${TORCH_INDEX_URL}"

COPY --chown=airflow:root requirements.txt /opt/livi/requirements.txt
# Airflow itself comes from the base image; keep its version by installing against it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/livi/requirements.txt \
 && pip install --no-cache-dir --no-deps musicnn==0.1.0

COPY --chown=airflow:root pyproject.toml README.md /opt/livi/
COPY --chown=airflow:root livi_tasks /opt/livi/livi_tasks
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/livi

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
