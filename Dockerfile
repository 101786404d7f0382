# archiver worker / CLI image: Python 3.11 slim (pinned by tag and digest), the locked
# dependencies, a non-root user.
#
# Dependencies come from requirements.lock (scripts/lock), installed with --require-hashes, so two
# builds of one commit install the same bytes. No ffmpeg: yt-dlp is told to fetch one progressive
# file and never to post-process (fixup: never), so no code path runs it.
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The lock first, alone: the dependency layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY archiver ./archiver
# setuptools comes from the lock too: the build downloads nothing.
RUN pip install --no-deps --no-build-isolation . && pip check

RUN useradd --create-home --uid 10001 archiver \
    && mkdir -p /data /tmp/archiver \
    && chown archiver:archiver /data /tmp/archiver
USER archiver
WORKDIR /home/archiver

# Every setting comes from ARCHIVER_* variables (see docker-compose.yml) or ARCHIVER_CONFIG.
ENTRYPOINT ["archiver"]
CMD ["worker", "--queues", "media,video"]
