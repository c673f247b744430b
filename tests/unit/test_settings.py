import dataclasses
from typing import Literal

import numpy as np
import pytest

from analysis.settings import ConfigError, StageSettings, require


@dataclasses.dataclass(frozen=True)
class DemoSettings(StageSettings):
    section = "demo"
    window_s: float = 1.0
    n_iterations: int = 3
    block_px: tuple[int, int] = (8, 8)
    method: Literal["a", "b"] = "a"
    reference: str | None = None

    def __post_init__(self):
        require(self.window_s > 0, "demo.window_s must be > 0")


def test_defaults_and_conversion():
    s = DemoSettings.from_mapping({"window_s": 2, "block_px": [4, 6]})
    assert s.window_s == 2.0 and isinstance(s.window_s, float)
    assert s.block_px == (4, 6)
    assert s.n_iterations == 3


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(
        ConfigError, match=r"'demo'.*unknown key 'windw_s'.*did you mean 'window_s'"
    ):
        DemoSettings.from_mapping({"windw_s": 2})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_iterations", 2.5),
        ("n_iterations", True),
        ("window_s", "1"),
        ("block_px", [1]),
        ("method", "c"),
        ("reference", 3),
    ],
)
def test_wrong_type_names_key(key, value):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        DemoSettings.from_mapping({key: value})


def test_range_check_is_config_error():
    with pytest.raises(ConfigError, match="window_s must be > 0"):
        DemoSettings.from_mapping({"window_s": -1})


def test_frozen():
    s = DemoSettings.from_mapping({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.window_s = 3.0  # type: ignore[misc]


def test_section_that_is_not_a_mapping():
    with pytest.raises(ConfigError, match="'demo' must be a mapping"):
        DemoSettings.from_mapping(5)


# --- torch devices (register.device, segment.device) ------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:3", "mps"])
def test_device_spellings_accepted(device):
    from analysis.register import RegisterSettings
    from analysis.segment import SegmentSettings

    assert RegisterSettings(device=device).device == device
    assert SegmentSettings(device=device).device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0", "CUDA", ""])
def test_device_misspellings_refused(device):
    from analysis.register import RegisterSettings

    with pytest.raises(ConfigError, match=r"register.device must be 'cpu', 'cuda', 'cuda:<n>'"):
        RegisterSettings.from_mapping({"device": device})


def test_cuda_requested_without_a_gpu_is_a_clear_error(monkeypatch):
    import torch

    from analysis.settings import torch_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"segment.device is 'cuda:0' but .* sees 0 CUDA"):
        torch_device("cuda:0", "segment.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="sees 1 CUDA device"):
        torch_device("cuda:1", "register.device")
    assert torch_device("cuda:0", "register.device") == torch.device("cuda:0")
    assert torch_device("cpu", "register.device") == torch.device("cpu")


def test_register_and_segment_hand_their_device_to_suite2p(monkeypatch):
    """The configured device reaches suite2p's calls (CPU only: the device is recorded)."""
    import torch

    import analysis.register as register
    import analysis.segment.somata as somata

    seen = []

    def on_cpu(device, field):
        seen.append((field, device))
        return torch.device("cpu")

    monkeypatch.setattr(register, "torch_device", on_cpu)
    monkeypatch.setattr(somata, "torch_device", on_cpu)
    rng = np.random.default_rng(0)
    movie = rng.normal(500, 20, (60, 64, 64)).astype(np.int16)
    out = np.zeros_like(movie)
    register.register_movie(
        movie, out, fs_hz=15.0, settings=register.RegisterSettings(device="cuda:1")
    )
    from analysis.segment import SegmentSettings, detect_somata

    detect_somata(
        movie, mean_image=movie.mean(0), fs_hz=15.0, settings=SegmentSettings(device="cuda")
    )
    assert ("register.device", "cuda:1") in seen and ("segment.device", "cuda") in seen


def test_soma_detection_memory_cap_sets_the_bins():
    from analysis.segment import SegmentSettings

    settings = SegmentSettings()
    assert settings.n_bins((256, 256)) == 500  # the cap leaves small fields alone
    assert settings.n_bins((796, 512)) == 368  # 3 GB / (20 B x 796 x 512 px)
    assert SegmentSettings(max_detection_memory_gb=0.001).n_bins((796, 512)) == 10
