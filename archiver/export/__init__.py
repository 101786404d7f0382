"""Export the archive as standard web-archive files: WARC 1.1 (``warc``) and WACZ 1.1.1
(``wacz``), with a CDXJ index (``cdxj``) and one page per article (``pages``)."""
