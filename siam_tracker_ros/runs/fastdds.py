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


SHM_DIR = "/dev/shm"
MIN_SEGMENT_MESSAGES = 4  # fewer images in flight than this: not worth a profile


def shm_free_bytes(shm_dir: str = SHM_DIR) -> int | None:
    """Bytes free in the shared-memory file system (None: not there)."""
    try:
        st = os.statvfs(shm_dir)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def shm_segment_plan(frame_bytes: int, free_bytes: int | None) -> tuple[int, int] | None:
    """(segment, largest message) in bytes for images of frame_bytes: room for 16 messages (at least 32 MiB), at
    most half of the free shared memory; None when that leaves no room for MIN_SEGMENT_MESSAGES. Fast DDS cannot
    map a segment larger than what /dev/shm has free (a container's default is 64 MiB), and then sends the images
    over UDP as if no profile had been given."""
    message = max(4 << 20, 2 * int(frame_bytes) + (64 << 10))
    segment = max(32 << 20, 16 * message)
    if free_bytes is not None:
        segment = min(segment, free_bytes // 2)
    return (segment, message) if segment >= MIN_SEGMENT_MESSAGES * message else None


def use_large_shm_segment(frame_bytes: int, shm_dir: str = SHM_DIR) -> tuple[str | None, str | None]:
    """Fast DDS's default shared-memory segment (512 KiB) is smaller than one 640x480 bgr8 image (900 KiB), so
    images go over fragmented UDP instead, and best-effort (sensor-data) subscribers lose most of them as soon as
    the machine is busy. With Fast DDS and no user profile, give this process's participant a shared-memory
    segment sized by shm_segment_plan: the segment is the writer's, so every local subscriber benefits.
    Returns (the profile path written or None, a warning for the user or None)."""
    rmw = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if "fastrtps" not in rmw and "fastdds" not in rmw:
        return None, None
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        return None, None
    free = shm_free_bytes(shm_dir)
    plan = shm_segment_plan(frame_bytes, free)
    if plan is None:
        have = "no" if free is None else f"only {free / 2 ** 20:.0f} MiB of"
        return None, (f"{have} shared memory free in {shm_dir}: images of {frame_bytes / 2 ** 20:.1f} MiB go over "
                      f"UDP, and best-effort subscribers lose many of them when the machine is busy; give it more "
                      f"(a container: docker run --shm-size=512m)")
    segment, message = plan
    fd, path = tempfile.mkstemp(prefix="siam_player_fastdds_", suffix=".xml")
    with os.fdopen(fd, "w") as f:
        f.write(_FASTDDS_PROFILE.format(segment=segment, message=message))
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = path
    return path, None
