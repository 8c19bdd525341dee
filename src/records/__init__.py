"""Record lines and record indexes: the files raw writes and merge and split read; merging."""
