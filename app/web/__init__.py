"""The web UI: static files (no build step) served by the control plane at `/`."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
