import base64

import numpy as np
import pytest

from analysis import qc
from analysis.qc import data, html
from analysis.settings import ConfigError


def decode(enc):
    codes = np.frombuffer(base64.b64decode(enc["q"]), np.uint8)
    values = enc["lo"] + codes * (enc["hi"] - enc["lo"]) / 254
    return np.where(codes == data.NAN_CODE, np.nan, values)


def test_quantize_keeps_values_to_a_byte_and_nan():
    values = np.array([0.0, 0.5, np.nan, 2.0])
    back = decode(data.quantize(values))
    np.testing.assert_allclose(back[[0, 1, 3]], values[[0, 1, 3]], atol=2.0 / 254)
    assert np.isnan(back[2])


def test_downsampled_trace_keeps_a_one_frame_event():
    trace = np.zeros(30000)
    trace[12345] = 3.0
    enc = data.downsample_minmax(trace, max_points=2000)
    back = decode(enc)
    assert len(back) <= 2000
    assert back.max() == pytest.approx(3.0)
    assert np.argmax(back) * enc["step"] == pytest.approx(12345, abs=2 * enc["step"])


def test_downsampled_spikes_keep_their_total():
    spikes = np.random.default_rng(0).exponential(size=5000) * (np.arange(5000) % 97 == 0)
    enc = data.downsample_sum(spikes, max_points=100)
    assert decode(enc).sum() == pytest.approx(spikes.sum(), rel=0.02)
    assert len(decode(enc)) * enc["step"] == pytest.approx(5000)


def test_bad_frame_runs():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 1], bool)
    assert data.frame_runs(flags) == [[1, 3], [5, 6], [7, 8]]


def test_outline_of_a_square_mask_follows_its_edge():
    mask = np.zeros((10, 10))
    mask[2:5, 3:7] = 1
    path = data.outline_path(mask)
    assert path.startswith("M") and path.endswith("Z") and path.count("M") == 1
    xy = np.array([p.split() for p in path[1:-1].split("L")], float)  # (col, row) points
    assert xy[:, 0].min() == pytest.approx(2.5) and xy[:, 0].max() == pytest.approx(6.5)
    assert xy[:, 1].min() == pytest.approx(1.5) and xy[:, 1].max() == pytest.approx(4.5)


def test_mask_at_the_field_edge_gets_a_closed_outline():
    mask = np.zeros((6, 6))
    mask[:2, :2] = 1
    assert data.outline_path(mask).count("M") == 1


def test_captions_fill_the_report_wildcards():
    text = "QC of {{ snakemake.wildcards.subject }}, plane {{snakemake.wildcards.plane}}."
    assert qc.render_caption(text, subject="m01", plane="0") == "QC of m01, plane 0."


def test_page_data_cannot_end_its_script_element():
    assert "</script>" not in html._json_for_script({"note": "</script><script>alert(1)"})


def test_qc_settings_are_checked():
    assert qc.QcSettings.from_mapping({}).max_trace_points == 2000
    with pytest.raises(ConfigError, match="jpeg_quality"):
        qc.QcSettings.from_mapping({"jpeg_quality": 0})
    with pytest.raises(ConfigError, match="max_trace_pts"):
        qc.QcSettings.from_mapping({"max_trace_pts": 10})


def test_index_page_is_self_contained():
    page = qc.render_index_page(
        [{"subject": "m01", "page": "m01.html", "sessions": 2, "n_soma": 3, "n_dendrite": 2,
          "n_target": 1, "page_bytes": 1000}],
        summary="Conclusion at alpha = 0.05: <none>",
        summary_caption="The conclusion.",
        tables={},
        figures=[qc.Figure("fig", b"\x89PNG", "A caption.")],
    )  # fmt: skip
    assert 'href="m01.html"' in page and "&lt;none&gt;" in page
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page
