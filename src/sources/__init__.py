"""Reading sources, the raw stage's concern: readers and validation; path, url and sample origins; encoding on
worker processes; the synthetic sample."""
