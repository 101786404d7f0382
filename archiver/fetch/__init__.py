"""Fetchers: HTTP (httpx) and video (yt-dlp), behind the SSRF guard."""
