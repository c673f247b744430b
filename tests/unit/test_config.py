import dataclasses

import pytest
import yaml

from analysis import config as cfg
from analysis.settings import ConfigError

ROOT = cfg.SCHEMA_PATH.parent.parent.parent


def test_committed_schema_equals_settings_dataclasses():
    committed = yaml.safe_load(cfg.SCHEMA_PATH.read_text())
    assert committed == cfg.config_schema(), (
        "workflow/schemas/config.schema.yaml is stale: run `python -m analysis.config --write`"
    )


def test_default_config_lists_every_setting_with_its_default():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert config == cfg.default_config(), (
        "config/config.yaml is stale: run `python -m analysis.config --write`"
    )
    settings = cfg.load_settings(config)
    for section in cfg.STAGES:
        assert dataclasses.asdict(settings[section]) == dataclasses.asdict(
            cfg.settings_class(section)()
        )


def test_default_config_validates_against_schema():
    import jsonschema

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    jsonschema.validate(config, cfg.config_schema())


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"registr": {}}, r"unknown top-level key 'registr'; did you mean 'register'"),
        (
            {"register": {"nonrigd": False}},
            r"'register': unknown key 'nonrigd'; did you mean 'nonrigid'",
        ),
        (
            {"extract": {"tau_decay_s": "fast"}},
            r"'extract': key 'tau_decay_s' must be of type float",
        ),
        ({"stats": {"n_permutations": 2.5}}, r"'stats': key 'n_permutations' must be of type int"),
    ],
)
def test_bad_config_keys_fail_with_the_key_named(config, match):
    with pytest.raises(ConfigError, match=match):
        cfg.load_settings(config)


def test_schema_rejects_unknown_keys():
    import jsonschema

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["segment"]["diameter"] = 10
    with pytest.raises(jsonschema.ValidationError, match="'diameter' was unexpected"):
        jsonschema.validate(config, cfg.config_schema())


def write_sessions(path, rows):
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n")


def test_sessions_table(tmp_path):
    table = tmp_path / "sessions.tsv"
    write_sessions(
        table,
        [
            ("subject", "session", "path"),
            ("m2", "day02", "m2/day02"),
            ("m2", "day01", "/abs/day01"),
        ],
    )
    sessions = cfg.load_sessions(table, raw_root=tmp_path / "raw")
    assert sessions["session"].tolist() == ["day01", "day02"]
    assert sessions["session_dir"].tolist() == [
        "/abs/day01",
        str(tmp_path / "raw" / "m2" / "day02"),
    ]


def test_sessions_table_condition_defaults_to_control(tmp_path):
    table = tmp_path / "sessions.tsv"
    write_sessions(
        table,
        [
            ("subject", "session", "path", "condition"),
            ("m1", "day01", "m1/day01", "ndnf_opto"),
            ("m2", "day01", "m2/day01", ""),
        ],
    )
    sessions = cfg.load_sessions(table, raw_root=tmp_path)
    assert sessions["condition"].tolist() == ["ndnf_opto", "control"]
    plain = tmp_path / "plain.tsv"
    write_sessions(plain, [("subject", "session", "path"), ("m1", "day01", "m1/day01")])
    assert cfg.load_sessions(plain, raw_root=tmp_path)["condition"].tolist() == ["control"]


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            [("subject", "session", "path", "condition"), ("m1", "d1", "a", "ndnf opto")],
            r"condition 'ndnf opto' may only contain",
        ),
        ([("subject", "session"), ("m1", "d1")], r"missing column\(s\) \['path'\]"),
        (
            [("subject", "session", "path"), ("m1", "d1", "a"), ("m1", "d1", "b")],
            r"duplicated session name\(s\) \[\['m1', 'd1'\]\]",
        ),
        (
            [("subject", "session", "path", "fps"), ("m1", "d1", "a", "3")],
            r"unknown column\(s\) \['fps'\]",
        ),
        ([("subject", "session", "path"), ("m 1", "d1", "a")], r"subject 'm 1' may only contain"),
    ],
)
def test_sessions_table_errors(tmp_path, rows, match):
    table = tmp_path / "sessions.tsv"
    write_sessions(table, rows)
    with pytest.raises(ConfigError, match=match):
        cfg.load_sessions(table, raw_root=tmp_path)


def test_session_overrides_skip_empty_cells():
    row = {"subject": "m1", "fs_hz": float("nan"), "n_planes": 2.0}
    assert cfg.session_overrides(row) == {"n_planes": 2}


def test_rule_settings_take_the_untracked_fields_from_the_config():
    config = {"extract": {"max_memory_gb": 0.25, "tau_decay_s": 0.9}}
    params = {"tau_decay_s": 1.5}
    settings = cfg.rule_settings("extract", params, config)
    assert settings.max_memory_gb == 0.25  # untracked: from the config
    assert settings.tau_decay_s == 1.5  # tracked: from the rule's params
