"""The leakage and contamination certificate: n-grams, near-duplicates, leakage, contamination."""
