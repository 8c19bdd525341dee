"""Writing outputs: atomic files and directories, flushed to disk behind the writes."""
