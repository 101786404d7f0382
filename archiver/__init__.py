"""archiver: preserve the images, GIFs and videos that articles reference."""

__version__ = "0.1.0"
