"""The node's parameter table (ros/params.py) is the one source of the parameters: its configuration-backed defaults
are the config dataclasses', config/tracker.yaml is written from it, and the README's parameter table has its rows.
The last test runs a node over real DDS: a configuration-backed parameter set at run time reaches the tracker."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from node_helpers import sequence, weights  # noqa: F401

pytest.importorskip("rcl_interfaces", reason="the table builds rcl_interfaces descriptors (source .ros/env.sh)")

from siam_tracker_ros.config import BackendConfig, Config, ConfigError, TrackingConfig  # noqa: E402
from siam_tracker_ros.ros.params import CONFIG_FIELDS, PARAMS, TRACKING_PARAMS, readme_row, yaml_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REGENERATE = "python -m siam_tracker_ros.ros.params > config/tracker.yaml"


def test_configuration_backed_parameters_take_the_config_defaults():
    defaults = Config()
    backed = [p for p in PARAMS if p.config_key]
    assert {p.config_key for p in backed} >= {"backend.name", "backend.device", "backend.max_targets",
                                              "tracking.lost_threshold", "tracking.box_margin"}
    for p in backed:
        section, field = p.config_key.split(".")
        assert p.default == getattr(getattr(defaults, section), field), p.name
        assert type(p.default) is type(getattr(getattr(defaults, section), field)), p.name
    assert CONFIG_FIELDS == {p.name: tuple(p.config_key.split(".")) for p in backed}
    # The node copies these into the tracking section under the same names.
    assert set(TRACKING_PARAMS) == {p.name for p in backed if p.config_key.startswith("tracking.")}
    assert set(TRACKING_PARAMS) <= {f.name for f in dataclasses.fields(TrackingConfig)}


def test_choices_and_ranges_of_backed_parameters_are_what_the_config_accepts():
    for p in PARAMS:
        if not p.config_key:
            continue
        section, field = p.config_key.split(".")
        cls = {"tracking": TrackingConfig, "backend": BackendConfig}[section]
        for value in (p.choices or ()) + (tuple(p.range) if p.range else ()):
            values = {field: type(p.default)(value)}
            if field in ("lost_threshold", "found_threshold"):  # lost <= found is checked as a pair
                values = {"lost_threshold": 0.0, "found_threshold": 1.0, **values}
            cls(**values).validate()
        if p.choices:
            with pytest.raises(ConfigError, match=field):
                cls(**{field: "no-such-" + field}).validate()


def test_the_shipped_yaml_is_written_from_the_table():
    text = (REPO / "config" / "tracker.yaml").read_text()
    assert text == yaml_text(), f"config/tracker.yaml differs from ros/params.py: regenerate it with `{REGENERATE}`"
    values = yaml.safe_load(text)["tracker_node"]["ros__parameters"]
    # the Config-backed parameters are left commented out (so that a config_file's value applies), with the default
    assert values == {p.name: p.default for p in PARAMS if not p.config_key}
    commented = yaml.safe_load("\n".join(line.replace("    # ", "", 1) for line in text.splitlines()
                                         if re.match(r"    # [a-z_0-9]+: ", line)))
    assert commented == {p.name: p.default for p in PARAMS if p.config_key}


def test_the_readme_parameter_table_has_the_tables_rows():
    readme = (REPO / "README.md").read_text()
    rows = [line for line in readme.splitlines() if re.match(r"\| `[a-z_0-9]+` \| (bool|int|double|string) \|", line)]
    expected = [readme_row(p) for p in PARAMS]
    missing = [row for row in expected if row not in rows]
    assert not missing, ("README rows that differ from ros/params.py (`python -m siam_tracker_ros.ros.params --readme` "
                         "prints them):\n" + "\n".join(missing))
    names = [re.match(r"\| `([a-z_0-9]+)`", row).group(1) for row in rows if row not in expected]
    assert not set(names) & {p.name for p in PARAMS}, names


def test_box_margin_set_at_run_time_is_the_trackers_margin(sequence, weights, tmp_path):  # noqa: F811
    """box_margin is one setting, the tracker configuration's: raised on a running node, the services' check and the
    tracker's own check of the box both take the new value (over DDS, a real node)."""
    from node_helpers import shared_node_args, tracker_node

    frames, _ = sequence
    h, w = frames[0].shape[:2]
    box = [-0.7 * w, 40.0, 0.7 * w + 40.0, 40.0]  # its left edge 0.7 x the width past the image
    with tracker_node(tmp_path / "tracker_node.log", *shared_node_args(weights)) as (client, _, _):
        stamp = client.publish(frames[0])
        res = client.init(box, stamp=stamp, target_id="wide")
        assert not res.success and "outside" in res.message, res.message
        assert client.set_param("box_margin", 0.9).successful
        res = client.init(box, stamp=stamp, target_id="wide")
        assert res.success, res.message
        assert client.stop("wide").success
