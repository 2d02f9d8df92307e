"""A Fast DDS participant profile with a shared-memory segment large enough for whole camera images (the player's)."""
from __future__ import annotations

import os
import tempfile

_FASTDDS_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<!-- written by siam-tracker play: a shared-memory segment large enough for whole camera images -->
<profiles xmlns="http://www.eprosima.com">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>siam_player_shm</transport_id>
      <type>SHM</type>
      <segment_size>{segment}</segment_size>
      <maxMessageSize>{message}</maxMessageSize>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>siam_player_udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="siam_player_participant" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>siam_player_shm</transport_id>
        <transport_id>siam_player_udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def use_large_shm_segment(frame_bytes: int) -> str | None:
    """Fast DDS's default shared-memory segment (512 KiB) is smaller than one 640x480 bgr8 image (900 KiB), so
    images go over fragmented UDP instead, and best-effort (sensor-data) subscribers lose most of them as soon as
    the machine is busy. With Fast DDS and no user profile, give this process's participant a shared-memory
    segment of 16 frames (at least 32 MiB): the segment is the writer's, so every local subscriber benefits.
    Returns the profile path written, or None when left alone."""
    rmw = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if "fastrtps" not in rmw and "fastdds" not in rmw:
        return None
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        return None
    message = max(4 << 20, 2 * int(frame_bytes) + (64 << 10))
    segment = max(32 << 20, 16 * message)
    fd, path = tempfile.mkstemp(prefix="siam_player_fastdds_", suffix=".xml")
    with os.fdopen(fd, "w") as f:
        f.write(_FASTDDS_PROFILE.format(segment=segment, message=message))
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = path
    return path
