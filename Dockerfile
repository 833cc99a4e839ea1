# The Airflow image of docker-compose.yaml: an Airflow 3 image with this package installed from the source tree.
#
#   docker build -t airflow-hi-stow .                                   # on the official image
#   docker build --build-arg AIRFLOW_IMAGE=my-registry/airflow:3.3.2 .  # on another image built like it
#
# AIRFLOW_IMAGE must be the official apache/airflow image or one that behaves like it: a non-root `airflow` user
# whose `pip install` goes into the environment Airflow runs from, and AIRFLOW_VERSION set (pinning it below keeps
# pip from up- or downgrading Airflow while it resolves this package's dependencies). `make compose-test` builds on
# such a stand-in made from Debian packages (compose/podman/airflow-base.Containerfile).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2
FROM ${AIRFLOW_IMAGE}

# The emulator service keeps its data store here (a named volume starts as a copy of this empty, writable folder).
USER root
RUN mkdir -p /var/lib/hi-stow-emulator && chown airflow:0 /var/lib/hi-stow-emulator \
    && chmod 2775 /var/lib/hi-stow-emulator
USER airflow

COPY --chown=airflow:0 pyproject.toml README.md /opt/hi-stow/
COPY --chown=airflow:0 airflow_hi_stow /opt/hi-stow/airflow_hi_stow
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/hi-stow
