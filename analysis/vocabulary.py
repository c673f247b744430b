"""The pipeline's words for groups, epochs, outcomes, plane roles and BCI log columns.

One place for the labels every stage writes into tables and reads back: a stage imports
them from here instead of spelling them again, so a table written by one stage is read
with the same words by the next. Depends on nothing else in the package.
"""

from __future__ import annotations

#: The two BCI target groups: P+ must raise its activity, P- must lower it.
GROUPS = ("P+", "P-")
#: Group label of a neuron that is not a BCI target, in every result table.
NON_TARGET = "non-target"
#: Group label of a non-target neuron in the simulator's truth files (``neurons.tsv``,
#: the committed sample's truth); read as :data:`NON_TARGET` everywhere else.
SIMULATED_NON_TARGET = "none"

#: Task-error epochs: the error falling, rising, or neither (flat, outside active frames,
#: or too short); an event in epoch 'none' is left out of the group x epoch statistics.
EPOCHS = ("reduction", "increase", "none")
NO_EPOCH = "none"

#: Trial outcomes (analysis.cloose): the readout reached threshold, fell below the failure
#: bound, or neither before the trial's last frame.
OUTCOMES = ("hit", "failure", "timeout")

#: What an imaging plane holds (session.yaml ``plane_roles``).
PLANE_ROLES = ("soma", "dendrite")

#: The experimental condition of a session (optional sessions-table column ``condition``;
#: empty cells and tables without the column mean this one). Free text, e.g. ``ndnf_opto``.
DEFAULT_CONDITION = "control"

#: The plain per-volume BCI log ``bci_frames.tsv``: required, then optional columns.
BCI_REQUIRED_COLUMNS = ("frame", "trial", "new_trial", "readout", "angle_deg", "reward", "aversive")
BCI_OPTIONAL_COLUMNS = ("licks", "opto", "shift_row", "shift_col")
#: Keys ``bci_meta.yaml`` must hold.
BCI_META_REQUIRED = ("threshold", "failure_bound", "target_angle_deg", "max_trial_frames")

#: BCI log in an NWB file, as analysis.export writes it: the per-volume TimeSeries (in
#: processing/behavior/BCI, else in acquisition) of each column, and the task parameters.
NWB_BCI_CONTAINER = "BCI"
NWB_BCI_SERIES = {
    "readout": "readout",
    "angle_deg": "grating_angle",
    "reward": "reward_ttl",
    "aversive": "aversive_ttl",
}
NWB_BCI_OPTIONAL_SERIES = {"licks": "licks", "opto": "opto"}
NWB_SHIFT_SERIES = "online_shift"  # (volume, 2): shift_row, shift_col
NWB_BCI_PARAMETERS = "BCITaskParameters"  # processing/behavior table: parameter, value
