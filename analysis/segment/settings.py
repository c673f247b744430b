"""The segment stage's settings (config section ``segment``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from analysis.settings import StageSettings, check_device, require

# sparsery's memory per binned frame and pixel: about five float32 binned movies at once
BINNED_BYTES_PER_PIXEL = 20

#: ``segment.classifier`` value for the hand-set rules instead of a trained model
RULES = "rules"


@dataclasses.dataclass(frozen=True)
class SegmentSettings(StageSettings):
    """Settings of the segment stage (config section ``segment``).

    Soma detection (suite2p sparsery)
        diameter_px: expected soma diameter; sets sparsery's spatial scale
        (``round(log2(diameter_px / 3))``, clipped to 1..4) and suite2p's ROI statistics.
        tau_s: indicator decay time; suite2p bins ``round(tau_s * fs_hz)`` frames together.
        threshold_scaling: sparsery peak threshold multiplier (higher = fewer ROIs).
        max_rois: upper bound on the number of ROIs sparsery extracts.
        highpass_time_bins: temporal high-pass window, in binned frames.
        highpass_neuropil_px: spatial high-pass (neuropil) filter size of sparsery (somata).
        max_overlap: drop ROIs sharing more than this fraction of pixels with others.
        merge_distance_fraction: sparsery ROIs whose centroids are closer than this
        fraction of ``diameter_px`` are merged (one soma split in two), as long as the
        union's area stays within ``merge_max_area_fraction``.
        merge_max_area_fraction: largest union of a merge, as a fraction of the area of
        a disk of ``diameter_px``; below ``max_area_fraction``, so that two touching
        somata of the expected size are not merged into one large one.
        trim_fraction: after merging, pixels weighted below this fraction of the ROI's
        peak weight are dropped (dim rims spilling onto neighbouring somata).
        merge_core_iou: close ROIs whose untrimmed union is too large are still merged
        when their cores (pixels >= ``trim_fraction`` of the peak) overlap at least this
        much (IoU) and the union of the cores fits: two halves of one soma whose dim
        rims spill far, not two somata (their cores do not overlap).
        max_binned_frames: cap on the number of binned frames sparsery gets; longer
        movies get longer bins. sparsery holds about five float32 binned movies, 20 bytes
        per binned frame and pixel (:data:`BINNED_BYTES_PER_PIXEL`), so this bounds the
        stage's memory whatever the recording length: 500 bins are 0.66 GB at 256 x 256
        px but 4.1 GB at the rig's 796 x 512 px.
        max_detection_memory_gb: cap on sparsery's binned movies, GB; fewer bins (at least
        10) where ``max_binned_frames`` would need more on a large field. The default 3.0
        leaves 256 x 256 px at 500 bins and gives 368 bins at 796 x 512 px.
        fit_soma_size: grow each sparsery ROI to the bright mean-image blob it sits on (the
        disk of the blob's fitted diameter where it is 1.2 times as bright as the ring
        around it, never over another ROI): sparsery keeps the
        most active pixels, often a fraction of a large soma. On by default: on the
        realistic validate cohort soma F1 0.44 -> 0.49, targets, tracking and pairing held.
    Cell classification (no downloaded classifier)
        classifier: ``builtin`` (the logistic model shipped in the package, trained on the
        simulator: :mod:`analysis.segment.train_classifier`), a path to such a model, or
        ``rules`` (the area, compactness, skewness and contrast rules below).
        min_cell_probability: a candidate is a cell when the model gives it at least this
        probability; 0 (default) takes the model's own threshold, the one that gave the
        best soma F1 on its training sessions.
        min_area_fraction, max_area_fraction: allowed ROI area, as fractions of the
        area of a disk of ``diameter_px``.
        max_compactness: compactness (mean pixel distance from the centroid over that of a
        filled disk of equal area; ~1 = disk, larger = more scattered).
        min_skewness: skewness of the ROI's binned trace; sparse calcium transients are
        strongly positively skewed, neuropil fragments are not.
        min_contrast: mean-image brightness inside the ROI over that of a ring half a
        diameter wide around it, on a field whose somata rest bright: a soma is no darker
        than the neuropil around it, a patch of neuropil with transients of its own is
        (0.85-0.97 in ``test_detect_somata_recovers_disk_cells``). Somata of a field vary
        in brightness, so its dim active ones rest near 1.1 (a ``realistic`` session: 17
        of 85 found by sparsery were lost at 1.2 for this rule alone). Chosen on two
        3000-frame ``realistic`` subjects (seeds 3 / 5, 2 days each, soma F1 at IoU >= 0.5,
        mean of the 4 sessions): 1.2 0.555, 1.1 0.600, **1.0 0.639**, 0.9 0.619.
        min_contrast_dark: the contrast rule on a field whose somata rest dark: where
        fewer than half of its most active soma-sized ROIs rest ``bright_soma_contrast``
        times as bright as their surround (the neurofinder movie: 33 %), dimness does not
        tell somata from neuropil there, and ROIs clearly darker than their surround
        (vessels, gaps) are still dropped. At or above ``min_contrast``: no switch (the
        rule is never raised). Chosen on four 1500-frame simulated fields (soma F1 at IoU
        >= 0.5): ``realistic_dark`` seeds 3 / 5 (the switch fires) 0.29 / 0.33 at 1.2,
        0.59 / 0.59 at 1.0, 0.79 / 0.77 at 0.8.
        bright_soma_contrast: the resting contrast (as ``min_contrast``) that tells a
        field whose somata rest bright: at least half of its most active soma-sized ROIs
        reach it. It was ``min_contrast`` (1.2) until that was lowered for dim somata.
        min_event_area_fraction: the area a sparsery ROI's own events light (its event
        image, the mean of its top 5 % bins less its median bins, at half its level
        inside the ROI, connected to it, holes filled:
        :func:`analysis.segment.footprint.event_areas`), as a fraction of the area of a
        disk of ``diameter_px``: a soma's events light its whole cytosol, those of a
        bouton or a thin process crossing the plane a speck. The real neurofinder movie's
        most active ROIs are such specks (11 px, their events at a quarter 2 px out).
        0 turns the rule off. Chosen on two ``realistic_dark`` fields with specks
        (seeds 3 / 5, 1500 frames): at 0.5 false cells 87 -> 53 and 97 -> 60, every cell
        found at IoU >= 0.5 kept; on fields without specks it drops nothing found.
        max_cell_overlap: a cell sharing at least this fraction of its pixels with larger
        cells is a second ROI on their soma (a piece sparsery split off, left inside the
        soma the larger one grew to) and is not a cell. Chosen on the realistic preset:
        there, overlapping cell pairs sharing >= 0.3 of the smaller were one soma in 33 of
        37 pairs (two somata below 0.3); soma F1 of the detectable somata 0.58 -> 0.62
        and 0.655 -> 0.654 on two fields; 0.715 -> 0.736 on a cohort that chose nothing
        (seed 2). No two cells overlap so on the neurofinder movie.
        cell_rims: after classification, each cell gains the pixels just outside it (1
        px, no cell's, larger cells first) that its own events light to a fifth of their
        level inside it (:func:`analysis.segment.footprint.add_rims`): trimmed sparsery
        weights and mean-image blob masks miss a soma's rim, and cells were found inside
        their somata too small for IoU 0.5; the background outside a sharp-edged soma
        stays out. Chosen on eight simulated 1500-frame fields (``realistic``,
        ``realistic_dark`` with and without specks, seeds 3 / 5): mean soma F1 gain
        0.061 (smallest 0.040); a rim of every free pixel gained 0.040 (smallest -0.011)
        and cost the bundled sample's tidy somata 0.03-0.07. On the neurofinder movie,
        checked afterwards: see the README ("Cells gain the rim their events light").
    Anatomical detection (mean image; finds somata too quiet for sparsery)
        anatomical: also look for soma-sized blobs in the mean image and add those away
        from the functional cells. A blob passing both rules below is a cell when it
        passes the area and compactness rules (not the activity rules: such somata may
        be nearly silent). On by default with ``anatomical_min_z`` 4: chosen on the
        realistic preset (single days: soma F1 0.623 -> 0.635, z 2.5 gave 0.536); checked
        on the real neurofinder movie afterwards (centroid F1 0.15 -> 0.30).
        anatomical_min_z: the blob's Laplacian-of-Gaussian response (soma scale, on the
        locally contrast-normalised mean image), in robust SDs of that response over the
        image; bright somata and dark ones (indicator excluded from the nucleus, in dense
        labelled neuropil) both count. Measures how much the blob stands out from the
        neuropil texture: lower values add many blobs of texture (on the realistic preset
        z 2.5 added ~65 per field, 5 of them somata).
        anatomical_min_snr: the same response on the plain mean image over its standard
        error from the frames' noise; keeps noise from passing as texture in flat images.
    Dendrite detection
        dendrite_bin_s: time bin (s) averaged before computing correlations (about the
        dendritic event decay).
        dendrite_neuropil_block_px: neuropil of the dendrite plane = median of square blocks
        of this size in each binned frame, bilinearly interpolated.
        motion_block_px: residual registration error is removed in square blocks of this
        size (fit of the mean image's gradients to each binned frame).
        ridge_sigmas_px: scales of the Sato ridge filter (about half the dendrite width).
        ridge_threshold_sd: ridge pixels have a ridge response above this many robust SDs
        (from the median minus the 25th percentile) above the image median.
        correlation_threshold_sd: ridge pixels must also have a local correlation this many
        robust SDs above the correlation image's median.
        seed_distance_px: minimum distance between fragment seeds (local correlation
        maxima); smaller cuts touching dendrites into more, shorter fragments.
        seed_smoothing_px: Gaussian smoothing (SD) of the correlation image before seeds
        are found; more smoothing leaves a short dendrite touching a longer one without
        a seed of its own (it becomes part of the other's fragment).
        min_fragment_skewness: fragments whose binned trace has a lower skewness are
        dropped; the neuropil high-pass leaves a negative copy of each dendrite's activity
        in a halo around it (negatively skewed), which this removes.
        min_length_px: merged ROIs whose skeleton is shorter are dropped (a skeleton is
        about 2 px shorter than the dendrite it traces).
        min_dendrite_area_px: merged ROIs with fewer pixels are dropped (a dendrite
        segment 2-3 px wide and ``min_length_px`` long covers more).
        merge_corr_threshold: fragments are merged (average-linkage clustering) while their
        binned traces correlate at least this much on average (one tuft), each
        correlation divided by the geometric mean of the two fragments' split-half
        reliabilities (small fragments of a dim tuft correlate near 0.5 raw). 0.5 with the
        correction and the split of crossing fragments, chosen on the realistic validate
        cohort (cached fragments): target tufts per session mean 0.874 -> 0.919, sessions
        with every target tuft 4 -> 7 of 15; all tufts precision 0.888 -> 0.951. Held
        out (seed 2): median target tufts per session 0.89 -> 1.0.
        dendrite_grow_px: each merged ROI then takes in the pixels within this distance
        whose binned trace correlates at least ``dendrite_grow_min_corr`` with the ROI's
        mean trace (connected to it; a pixel may join several ROIs, as tufts overlap);
        0 turns this off. The watershed gives each pixel one fragment, so a tuft crossing
        others lost its share of the crossings. Chosen on the realistic validate cohort
        (3 animals x 5 days, cached fragments): target tufts found per session (IoU >= 0.3)
        mean 0.837 -> 0.874, median 0.78 -> 0.89; all tufts recall 0.649 -> 0.673,
        precision 0.857 -> 0.888; min_corr 0.15-0.25 and reach 2-4 px within 0.01. On
        cohorts that chose nothing, all tufts recall / precision: seed 2 0.673 / 0.893 ->
        0.688 / 0.914, ``realistic_dark`` 0.506 / 0.777 -> 0.574 / 0.881.
    device: torch device for suite2p's soma detection: "cpu", "cuda", "cuda:<n>" or "mps"
        (a GPU the job's machine lacks stops the job with a ConfigError).
    """

    section: ClassVar[str] = "segment"

    diameter_px: float = 8.0
    tau_s: float = 1.0
    threshold_scaling: float = 1.0
    max_rois: int = 500
    highpass_time_bins: int = 100
    highpass_neuropil_px: int = 25
    max_overlap: float = 0.75
    merge_distance_fraction: float = 0.7
    trim_fraction: float = 0.3
    merge_core_iou: float = 0.3
    merge_max_area_fraction: float = 2.5
    max_binned_frames: int = 500
    max_detection_memory_gb: float = 3.0
    fit_soma_size: bool = True
    classifier: str = RULES
    min_cell_probability: float = 0.0
    min_area_fraction: float = 0.4
    max_area_fraction: float = 3.5
    max_compactness: float = 1.6
    min_skewness: float = 0.5
    min_contrast: float = 1.0
    min_contrast_dark: float = 0.8
    bright_soma_contrast: float = 1.2
    min_event_area_fraction: float = 0.5
    max_cell_overlap: float = 0.3
    cell_rims: bool = True
    anatomical: bool = True
    anatomical_min_z: float = 4.0
    anatomical_min_snr: float = 5.0
    dendrite_bin_s: float = 0.4
    ridge_sigmas_px: tuple[float, ...] = (1.0,)
    dendrite_neuropil_block_px: int = 16
    motion_block_px: int = 28
    ridge_threshold_sd: float = 0.5
    correlation_threshold_sd: float = 1.5
    seed_distance_px: int = 2
    seed_smoothing_px: float = 0.5
    min_fragment_skewness: float = 0.3
    min_length_px: int = 6
    min_dendrite_area_px: int = 18
    merge_corr_threshold: float = 0.5
    dendrite_grow_px: int = 3
    dendrite_grow_min_corr: float = 0.2
    device: str = "cpu"

    def __post_init__(self) -> None:
        require(self.diameter_px >= 3, "segment.diameter_px must be >= 3 px")
        require(self.tau_s > 0, "segment.tau_s must be > 0 s")
        require(self.threshold_scaling > 0, "segment.threshold_scaling must be > 0")
        require(self.max_rois >= 1, "segment.max_rois must be >= 1")
        require(self.highpass_time_bins >= 1, "segment.highpass_time_bins must be >= 1")
        require(self.highpass_neuropil_px >= 1, "segment.highpass_neuropil_px must be >= 1")
        require(0 < self.max_overlap <= 1, "segment.max_overlap must be in (0, 1]")
        require(
            0 <= self.min_event_area_fraction < self.max_area_fraction,
            "segment.min_event_area_fraction must be in [0, max_area_fraction)",
        )
        require(self.max_binned_frames >= 10, "segment.max_binned_frames must be >= 10")
        require(self.max_detection_memory_gb > 0, "segment.max_detection_memory_gb must be > 0")
        require(self.merge_distance_fraction >= 0, "segment.merge_distance_fraction must be >= 0")
        require(0 <= self.trim_fraction < 1, "segment.trim_fraction must be in [0, 1)")
        require(0 < self.merge_core_iou <= 1, "segment.merge_core_iou must be in (0, 1]")
        require(self.merge_max_area_fraction > 0, "segment.merge_max_area_fraction must be > 0")
        require(
            0 <= self.min_area_fraction <= self.max_area_fraction,
            "segment.min_area_fraction must be >= 0 and <= segment.max_area_fraction",
        )
        require(self.max_compactness >= 1, "segment.max_compactness must be >= 1")
        require(
            0 <= self.min_cell_probability < 1, "segment.min_cell_probability must be in [0, 1)"
        )
        require(self.min_contrast >= 0, "segment.min_contrast must be >= 0")
        require(self.min_contrast_dark >= 0, "segment.min_contrast_dark must be >= 0")
        require(
            self.bright_soma_contrast >= self.min_contrast,
            "segment.bright_soma_contrast must be >= segment.min_contrast (a field whose most "
            "active somata fail the contrast rule is not a bright field): raise it with "
            "min_contrast",
        )
        require(0 < self.max_cell_overlap <= 1, "segment.max_cell_overlap must be in (0, 1]")
        require(self.anatomical_min_z > 0, "segment.anatomical_min_z must be > 0")
        require(self.anatomical_min_snr > 0, "segment.anatomical_min_snr must be > 0")
        require(self.dendrite_bin_s > 0, "segment.dendrite_bin_s must be > 0 s")
        require(
            len(self.ridge_sigmas_px) > 0 and all(s > 0 for s in self.ridge_sigmas_px),
            "segment.ridge_sigmas_px must be a non-empty list of positive scales (px)",
        )
        require(
            self.dendrite_neuropil_block_px >= 4, "segment.dendrite_neuropil_block_px must be >= 4"
        )
        require(self.motion_block_px >= 8, "segment.motion_block_px must be >= 8 px")
        require(self.ridge_threshold_sd > 0, "segment.ridge_threshold_sd must be > 0")
        require(self.correlation_threshold_sd > 0, "segment.correlation_threshold_sd must be > 0")
        require(self.seed_distance_px >= 1, "segment.seed_distance_px must be >= 1 px")
        require(self.seed_smoothing_px >= 0, "segment.seed_smoothing_px must be >= 0 px")
        require(self.min_length_px >= 1, "segment.min_length_px must be >= 1 px")
        require(self.min_dendrite_area_px >= 1, "segment.min_dendrite_area_px must be >= 1 px")
        require(
            -1 <= self.merge_corr_threshold <= 1,
            "segment.merge_corr_threshold must be in [-1, 1]",
        )
        require(self.dendrite_grow_px >= 0, "segment.dendrite_grow_px must be >= 0 px")
        require(
            0 < self.dendrite_grow_min_corr <= 1,
            "segment.dendrite_grow_min_corr must be in (0, 1]",
        )
        check_device(self.device, "segment.device")

    def n_bins(self, shape: tuple[int, int]) -> int:
        """Binned frames for sparsery on a field of ``shape`` px: ``max_binned_frames``
        unless ``max_detection_memory_gb`` allows fewer (at least 10)."""
        fits = int(
            self.max_detection_memory_gb * 1e9 / (BINNED_BYTES_PER_PIXEL * shape[0] * shape[1])
        )
        return max(10, min(self.max_binned_frames, fits))
