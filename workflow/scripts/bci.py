"""One session's BCI analysis: trials, task error epochs, aligned arrays, cursor replay."""

import numpy as np
import pandas as pd

from analysis import bci, io
from analysis.cloose import TaskParams
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="bci", inputs=sm.input) as log:
    settings = bci.BciSettings.from_mapping(sm.params.settings)
    frames = io.read_tsv(sm.input.bci_frames)
    meta = io.read_json(sm.input.bci_meta)
    fs_hz = io.read_json(sm.input.session)["fs_hz"]
    trials = bci.compute_trials(frames, meta=meta, fs_hz=fs_hz)
    log.info("%d trials: %s", len(trials), trials["outcome"].value_counts().to_dict())
    io.write_tsv(trials, sm.output.trials)
    io.write_tsv(
        bci.compute_task_error(frames, meta=meta, fs_hz=fs_hz, settings=settings), sm.output.frames
    )

    traces = io.read_netcdf(sm.input.traces)
    for name, column in (
        ("start", "start_frame"),
        ("reward", "reward_frame"),
        ("failure", "aversive_frame"),
    ):
        events = trials[trials[column].notna()]
        aligned = bci.align_trials(
            traces["dff"],
            events[column].to_numpy(np.int64),
            fs_hz=fs_hz,
            window_s=settings.window_s,
            trial_ids=events["trial"].to_numpy(),
        )
        io.write_netcdf(
            aligned.rename("dff"),
            sm.output[f"aligned_{name}"],
            stage="bci",
            settings=settings,
            inputs=sm.input,
        )

    targets = io.read_tsv(sm.input.targets)
    # the rig fills dropped frames with the last good value; NaN would poison its F0
    target_F = traces["F"].sel(roi=targets["roi"].to_numpy())
    target_F = target_F.copy(data=pd.DataFrame(target_F.values.T).ffill().bfill().to_numpy().T)
    params = TaskParams(
        target_angle_deg=float(meta["target_angle_deg"]),
        max_trial_frames=int(meta["max_trial_frames"]),
    )
    replayed = bci.replay_cursor(target_F, targets["group"].tolist(), meta=meta, params=params)
    agreement = bci.compare_readout(replayed, frames["readout"].to_numpy(float))
    log.info("cursor replay vs logged readout: %s", agreement)
    io.write_tsv(
        pd.DataFrame({"frame": frames["frame"], "logged": frames["readout"], "replayed": replayed}),
        sm.output.replay,
    )
    io.write_tsv(pd.DataFrame([agreement]), sm.output.replay_agreement)
