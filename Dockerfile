# One image for every role: `shadowdiff legacy`, `shadowdiff v2`, `shadowdiff proxy`, `shadowdiff seed`.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements requirements
# The locked versions, every file's hash checked (see `make lock`); then the project itself, without resolving again.
RUN pip install --no-cache-dir --require-hashes -r requirements/base.txt
COPY proxy proxy
COPY diffs diffs
COPY legacy_app legacy_app
COPY v2_app v2_app
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --create-home shadowdiff \
    && mkdir -p /data/legacy /data/v2 && chown -R shadowdiff /data

USER shadowdiff
WORKDIR /data
EXPOSE 8000 8001 8002 8900
ENTRYPOINT ["shadowdiff"]
CMD ["--help"]
