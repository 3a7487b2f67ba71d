"""Approved plans: the file `plan --out` writes and `run --plan` applies, the drift check
between them, and the targets `run --retry-failed` takes from an earlier run."""
