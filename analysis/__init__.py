"""Analysis of vectorized instructive signals in BCI two-photon data.

Stages (one module each): ingest, register, align_days, segment, track, extract, bci,
stats, figures, validate; plus the experiment simulator (simulate) and the rig's
closed-loop task logic (cloose).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bci-dendrites")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
