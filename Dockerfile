# archiver worker / CLI image: python:3.11-slim, the package installed with pip, a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg: yt-dlp merges and remuxes video formats with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY archiver ./archiver
RUN pip install .

RUN useradd --create-home --uid 10001 archiver \
    && mkdir -p /data /tmp/archiver \
    && chown archiver:archiver /data /tmp/archiver
USER archiver
WORKDIR /home/archiver

# Every setting comes from ARCHIVER_* variables (see docker-compose.yml) or ARCHIVER_CONFIG.
ENTRYPOINT ["archiver"]
CMD ["worker", "--queues", "media,video"]
