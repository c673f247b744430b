"""``python -m analysis.simulate``: the simulator's command line (:mod:`analysis.simulate.cli`)."""

from analysis.simulate.cli import main

raise SystemExit(main())
