"""Size of a subject's QC page at rig scale, built from synthetic saved results.

    python benchmarks/qc_page_size.py [--days 1 2] [--target-days 14]

Builds the page (analysis.qc) for a subject of 512 x 512 planes, 45 min sessions at
15 Hz per plane, 120 somata, 80 dendrites, 10 targets and 150 trials a day (90 hits, 30
failures), with the default qc settings, for each of ``--days``; the size grows linearly
with days, so the fit extrapolates to ``--target-days``. Images are smoothed noise (JPEG
sizes like real mean images), traces noise with events; only sizes are meaningful.
"""

import argparse

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import gaussian_filter

from analysis import masks, qc

SHAPE = (512, 512)
FS_HZ = 15.0
N_FRAMES = int(45 * 60 * FS_HZ)
N_ROIS = {0: 120, 1: 80}  # soma plane, dendrite plane
N_TARGETS = 10


def _image(rng):
    return gaussian_filter(rng.normal(size=SHAPE), 2) + gaussian_filter(rng.normal(size=SHAPE), 20)


def _masks(rng, sessions, n_rois):
    """Disks (radius 5 px) at random places, the same on every session (sparse, tracked)."""
    rows, cols = np.indices(SHAPE)
    centres = rng.uniform(10, SHAPE[0] - 10, size=(n_rois, 2))
    disks = masks.from_dense(
        np.stack([np.hypot(rows - r, cols - c) <= 5 for r, c in centres]).astype(np.float32)
    )
    return masks.stack_sessions(disks, dict.fromkeys(sessions, disks)), centres


def _traces(rng, n_rois):
    dff = rng.normal(0, 0.05, size=(n_rois, N_FRAMES)).astype(np.float32)
    spikes = (rng.random((n_rois, N_FRAMES)) < 0.01).astype(np.float32)
    ds = xr.Dataset(
        {"dff": (("roi", "time"), dff + spikes), "spikes": (("roi", "time"), spikes)},
        coords={"roi": np.arange(n_rois)},
        attrs={"fs_hz": FS_HZ},
    )
    frames = np.flatnonzero(spikes.any(0))[:3000]
    events = pd.DataFrame({"roi": frames % n_rois, "frame": frames, "amplitude": 0.5})
    return ds, events


def _aligned(rng, n_trials):
    lag = np.arange(-30, 61) / FS_HZ
    dff = rng.normal(size=(n_trials, N_ROIS[0], len(lag))).astype(np.float32)
    return xr.Dataset(
        {"dff": (("trial", "roi", "lag"), dff)}, coords={"roi": np.arange(N_ROIS[0]), "lag": lag}
    )


def subject_results(n_days, rng):
    sessions = [f"day{d + 1:02d}" for d in range(n_days)]
    rois, centres = {}, {}
    for plane, n in N_ROIS.items():
        rois[plane], centres[plane] = _masks(rng, sessions, n)
    registration = xr.Dataset(
        {
            "mean_image": (("row", "col"), _image(rng)),
            "mean_image_enhanced": (("row", "col"), _image(rng)),
            **{
                k: ("time", rng.normal(size=N_FRAMES))
                for k in ("shift_row", "shift_col", "corr_ref")
            },
            "bad_frame": ("time", rng.random(N_FRAMES) < 0.002),
        }
    )
    aligned_stack = np.stack([_image(rng) for _ in sessions])
    transforms = xr.Dataset(
        {
            "aligned": (("session", "row", "col"), aligned_stack),
            **{
                k: ("session", np.zeros(n_days))
                for k in ("shift_row", "shift_col", "rotation_deg", "corr")
            },
            "aligned_ok": ("session", np.ones(n_days, bool)),
        },
        coords={"session": sessions},
        attrs={"reference_session": sessions[0]},
    )
    traces = {(s, p): _traces(rng, n) for s in sessions for p, n in N_ROIS.items()}
    targets = [
        {
            "id": k,
            "group": "P+" if k < 5 else "P-",
            "plane": 0,
            "polygon": (
                centres[0][k] + 5 * np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])
            ).tolist(),
        }
        for k in range(N_TARGETS)
    ]
    trials = pd.DataFrame(
        {
            "start_frame": np.arange(150) * 240,
            "end_frame": np.arange(150) * 240 + 200,
            "outcome": ["hit"] * 90 + ["failure"] * 30 + ["timeout"] * 30,
        }
    )
    replay = pd.DataFrame(
        {"logged": rng.normal(size=N_FRAMES), "replayed": rng.normal(size=N_FRAMES)}
    )
    return qc.SubjectResults(
        subject="m99",
        sessions=sessions,
        soma_plane=0,
        dendrite_plane=1,
        bci_plane=dict.fromkeys(sessions, 0),
        registrations={(s, p): registration for s in sessions for p in N_ROIS},
        transforms=dict.fromkeys(N_ROIS, transforms),
        rois=rois,
        traces={k: v[0] for k, v in traces.items()},
        events={k: v[1] for k, v in traces.items()},
        targets=dict.fromkeys(sessions, targets),
        bci_frames=dict.fromkeys(sessions, pd.DataFrame(index=range(N_FRAMES))),
        target_rois=dict.fromkeys(
            sessions, pd.DataFrame({"target_id": range(N_TARGETS), "roi": range(N_TARGETS)})
        ),
        pairs=pd.DataFrame(
            {"soma_roi": range(60), "dendrite_roi": range(60), "corr": 0.5, "paired": True}
        ),
        trials=dict.fromkeys(sessions, trials),
        aligned={
            (s, e): _aligned(rng, n) for s in sessions for e, n in (("reward", 90), ("failure", 30))
        },
        replays=dict.fromkeys(sessions, replay),
        replay_agreement=dict.fromkeys(sessions, pd.DataFrame({"corr": [0.9]})),
        behaviour=pd.DataFrame({"session": sessions, "hit_rate": 0.6, "rewards_per_min": 2.0}),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--target-days", type=int, default=14)
    args = parser.parse_args()
    settings = qc.QcSettings()
    sizes = {}
    for n_days in args.days:
        view = qc.compute_subject_view(
            subject_results(n_days, np.random.default_rng(0)), settings=settings
        )
        sizes[n_days] = len(qc.render_subject_page(view).encode())
        print(f"{n_days} day(s): {sizes[n_days] / 1e6:.2f} MB")
    slope, intercept = np.polyfit(list(sizes), list(sizes.values()), 1)
    print(
        f"per day {slope / 1e6:.2f} MB; {args.target_days} days: "
        f"{(intercept + slope * args.target_days) / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
