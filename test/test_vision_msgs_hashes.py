"""The vision_msgs in this environment has exactly upstream's type hashes (REP-2011 RIHS01).

Expected values: shared/spec/vision_msgs_schema.md (upstream vision_msgs 4.x, Kilted). Equal hashes mean a
robot running the upstream package and this node talk to each other; a field renamed, retyped or reordered
in tools/ros_env/vision_msgs/msg/ changes the hash and fails here.

Two checks: the hashes rosidl wrote into share/vision_msgs/msg/<Type>.json at build time, and the hashes the
compiled type support actually advertises on DDS (a real rclpy publisher, read back through the graph).
"""
import json
import re
from pathlib import Path

import pytest

from ros_helpers import REPO_ROOT, install_prefix, require_rclpy, run_python
from ros_helpers import ros_domain_env  # noqa: F401  (pytest fixture)

VISION_MSGS = {
    "Point2D": "RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247",
    "Pose2D": "RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648",
    "BoundingBox2D": "RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "BoundingBox2DArray": "RIHS01_2464e82838009386d371b523211c21c91d74d313fcdd6788223c531d621cf691",
    "BoundingBox3D": "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "BoundingBox3DArray": "RIHS01_a81938db9576b10c2eecd7c5a5da3eac496efd00221b25ed051dfbc81fb56da6",
    "ObjectHypothesis": "RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "ObjectHypothesisWithPose": "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "Classification": "RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
    "Detection2D": "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "Detection3D": "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "Detection3DArray": "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "VisionClass": "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "VisionInfo": "RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284",
}
# Nested types from other packages, as listed in the spec (they appear in the referenced-type hashes).
EXTERNAL = {
    "builtin_interfaces/msg/Time": "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
    "std_msgs/msg/Header": "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    "geometry_msgs/msg/Point": "RIHS01_6963084842a9b04494d6b2941d11444708d892da2f4b09843b9c43f42a7f6881",
    "geometry_msgs/msg/Vector3": "RIHS01_cc12fe83e4c02719f1ce8070bfd14aecd40f75a96696a67a2a1f37f7dbb0765d",
    "geometry_msgs/msg/Quaternion": "RIHS01_8a765f66778c8ff7c8ab94afcc590a2ed5325a1d9a076ffff38fbce36f458684",
    "geometry_msgs/msg/Pose": "RIHS01_d501954e9476cea2996984e812054b68026ae0bfae789d9a10b23daf35cc90fa",
    "geometry_msgs/msg/PoseWithCovariance":
        "RIHS01_9a7c0fd234b7f45c6098745ecccd773ca1085670e64107135397aee31c02e1bb",
}
EXPECTED = dict(EXTERNAL, **{"vision_msgs/msg/" + k: v for k, v in VISION_MSGS.items()})
SPEC = REPO_ROOT.parent / "shared" / "spec" / "vision_msgs_schema.md"


def _vision_msgs_share() -> Path:
    """share/vision_msgs of whichever vision_msgs the environment provides (ament index), else our build."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("vision_msgs"))
    except Exception:  # ament_index_python missing, or vision_msgs not on AMENT_PREFIX_PATH
        share = install_prefix() / "share" / "vision_msgs"
        if not share.is_dir():
            pytest.skip("no vision_msgs found: run tools/ros_env/bootstrap.sh (make test does) or source ROS 2")
        return share


def test_expected_table_matches_spec():
    """The table above is the spec's (checked when shared/ lies beside the repository, as in CI)."""
    if not SPEC.is_file():
        pytest.skip("spec not found at %s" % SPEC)
    text = SPEC.read_text()
    from_spec = dict(re.findall(r"^### (\w+)\s+\((RIHS01_[0-9a-f]{64})\)", text, flags=re.M))
    assert from_spec == VISION_MSGS


def test_all_sixteen_messages_present():
    share = _vision_msgs_share()
    found = sorted(p.stem for p in (share / "msg").glob("*.msg"))
    assert found == sorted(VISION_MSGS)


@pytest.mark.parametrize("name", sorted(VISION_MSGS))
def test_generated_type_hash(name):
    doc = json.loads((_vision_msgs_share() / "msg" / (name + ".json")).read_text())
    hashes = {h["type_name"]: h["hash_string"] for h in doc["type_hashes"]}
    assert hashes["vision_msgs/msg/" + name] == VISION_MSGS[name]
    # every referenced type (Header, Pose, ... and the package's own nested types) hashes as upstream too
    for type_name, value in hashes.items():
        if type_name in EXPECTED:
            assert value == EXPECTED[type_name], type_name


ADVERTISED_CODE = r"""
import json, rclpy, vision_msgs.msg as vm
rclpy.init()
node = rclpy.create_node("hash_probe")
out = {}
for name in %r:
    topic = "probe_" + name.lower()
    node.create_publisher(getattr(vm, name), topic, 1)
    infos = node.get_publishers_info_by_topic(topic)
    out[name] = str(infos[0].topic_type_hash) if infos else None
print(json.dumps(out))
node.destroy_node()
rclpy.shutdown()
"""


def test_type_hash_advertised_on_dds(ros_domain_env):
    """The hash the compiled type support puts on the wire (what a remote upstream node compares)."""
    require_rclpy()
    proc = run_python(ADVERTISED_CODE % (sorted(VISION_MSGS),), ros_domain_env, timeout=60)
    advertised = json.loads(proc.stdout.strip().splitlines()[-1])
    assert advertised == VISION_MSGS
