"""Suite-wide settings, applied before any test module imports torch."""

import os

# Spinning OpenMP workers collapse throughput when cores are shared (see charforge/cli/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# No progress bars in test logs.
os.environ.setdefault("CHARFORGE_PROGRESS", "0")
