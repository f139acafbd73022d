"""Runs: rows whose work is a Ray job (training jobs, tuning runs, pipeline runs, quality reports), with one
lifecycle written once: kinds (what differs per kind), lifecycle (status changes with history, submit, stop, logs),
reconcile (rows aligned with Ray), queue_signal (wakes the reconcile loop when work is queued)."""
