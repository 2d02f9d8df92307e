"""Every dataset reader reads a tiny generated example of its layout; absent / degenerate boxes become NaN rows."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from siam_tracker_ros import data as ds


def _frames(folder: Path, n: int, pattern: str = "{:05d}.jpg", start: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((24, 32, 3), 40 * i % 255, np.uint8)
        cv2.imwrite(str(folder / pattern.format(i + start)), img)


def test_folder_layout(tmp_path):
    seq = tmp_path / "davis-x"
    _frames(seq, 3)
    (seq / "groundtruth.txt").write_text("1,2,10,12\nnan,nan,nan,nan\n3,4,0,5\n")
    (tmp_path / "empty-dir").mkdir()
    seqs = ds.load_sequences(tmp_path)
    assert [s.name for s in seqs] == ["davis-x"]
    s = seqs[0]
    assert len(s) == 3 and s.frame_paths[0].endswith("00001.jpg")
    np.testing.assert_allclose(s.boxes[0], [1, 2, 10, 12])
    assert list(s.valid) == [True, False, False]  # absent and zero-width rows skipped
    assert ds.detect_layout(tmp_path) == "folder"


def test_box_lines_round_trip():
    boxes = np.array([[1, 2, 3, 4], [np.nan] * 4, [0.5, 1.25, 335.74, 258.55]])
    text = ds.format_box_lines(boxes)
    assert text == "1,2,3,4\nnan,nan,nan,nan\n0.5,1.25,335.74,258.55\n"
    np.testing.assert_array_equal(ds.parse_box_lines(text), boxes)


def test_got10k_layout(tmp_path):
    seq = tmp_path / "GOT-10k_Train_000001"
    _frames(seq, 3, "{:08d}.jpg")
    (seq / "groundtruth.txt").write_text("1,2,10,12\n2,3,10,12\n3,4,10,12\n")
    (seq / "absence.label").write_text("0\n1\n0\n")
    assert ds.detect_layout(tmp_path) == "got10k"
    (s,) = ds.load_sequences(f"got10k:{tmp_path}")
    assert list(s.valid) == [True, False, True]
    assert s.frame_paths[2].endswith("00000003.jpg")


def test_lasot_layout(tmp_path):
    seq = tmp_path / "airplane" / "airplane-1"
    _frames(seq / "img", 4, "{:08d}.jpg")
    (seq / "groundtruth.txt").write_text("1,2,10,12\n1,2,10,12\n1,2,10,12\n1,2,10,12\n")
    (seq / "full_occlusion.txt").write_text("0,1,0,0")
    (seq / "out_of_view.txt").write_text("0,0,0,1")
    assert ds.detect_layout(tmp_path) == "lasot"
    (s,) = ds.load_sequences(tmp_path)
    assert s.name == "airplane-1" and len(s) == 4
    assert list(s.valid) == [True, False, True, False]


@pytest.mark.parametrize("sep", [",", "\t", " "])
def test_otb_layout(tmp_path, sep):
    seq = tmp_path / "Jogging"
    _frames(seq / "img", 2, "{:04d}.jpg")
    (seq / "groundtruth_rect.1.txt").write_text(sep.join(["11", "21", "5", "6"]) + "\n"
                                                + sep.join(["12", "22", "5", "6"]) + "\n")
    (seq / "groundtruth_rect.2.txt").write_text("1,1,4,4\n2,2,4,4\n")
    assert ds.detect_layout(tmp_path) == "otb"
    seqs = ds.load_sequences(tmp_path)
    assert [s.name for s in seqs] == ["Jogging-1", "Jogging-2"]
    np.testing.assert_allclose(seqs[0].boxes[0], [10, 20, 5, 6])  # 1-based -> 0-based


def test_vot_layout(tmp_path):
    a = tmp_path / "bag"
    _frames(a / "color", 2, "{:08d}.jpg")
    (a / "groundtruth.txt").write_text("10,10,20,10,20,30,10,30\nnan,nan,nan,nan\n")
    b = tmp_path / "ball"
    _frames(b, 2, "{:08d}.jpg")
    (b / "groundtruth.txt").write_text("1,2,3,4\n2,3,4,5\n")
    seqs = {s.name: s for s in ds.load_sequences(f"vot:{tmp_path}")}
    np.testing.assert_allclose(seqs["bag"].boxes[0], [10, 10, 10, 20])  # polygon -> axis-aligned
    assert list(seqs["bag"].valid) == [True, False]
    assert len(seqs["ball"]) == 2 and seqs["ball"].valid.all()


def test_vid_layout(tmp_path):
    snippet = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
    data = tmp_path / "Data" / "VID" / "train" / snippet
    ann = tmp_path / "Annotations" / "VID" / "train" / snippet
    _frames(data, 3, "{:06d}.JPEG", start=0)
    ann.mkdir(parents=True)

    def obj(tid, x0, y0, x1, y1):
        return (f"<object><trackid>{tid}</trackid><name>n01</name><bndbox><xmax>{x1}</xmax><xmin>{x0}</xmin>"
                f"<ymax>{y1}</ymax><ymin>{y0}</ymin></bndbox><occluded>0</occluded></object>")

    for i in range(3):
        objs = obj(0, 1, 2, 10, 12) + (obj(3, 5, 5, 9, 9) if i == 1 else "")
        (ann / f"{i:06d}.xml").write_text(f"<annotation><folder>x</folder>{objs}</annotation>")
    assert ds.detect_layout(tmp_path) == "vid"
    seqs = ds.load_sequences(tmp_path)
    assert len(seqs) == 2
    s0, s3 = seqs
    np.testing.assert_allclose(s0.boxes[0], [1, 2, 10, 11])
    assert s0.valid.all() and list(s3.valid) == [False, True, False]
    assert s0.frame_paths[0].endswith("000000.JPEG") and Path(s0.frame_paths[0]).is_file()


def test_mismatched_lengths_and_garbage(tmp_path):
    seq = tmp_path / "s"
    _frames(seq, 2)
    (seq / "groundtruth.txt").write_text("1,2,3,4\nnot a box\n5,6,7,8\n")
    (s,) = ds.load_sequences(tmp_path)
    assert len(s) == 2 and list(s.valid) == [True, False]


def test_split_held_out(tmp_path):
    for name in ("a", "b", "c"):
        _frames(tmp_path / name, 2)
        (tmp_path / name / "groundtruth.txt").write_text("1,2,3,4\n1,2,3,4\n")
    train, val = ds.split_sequences(ds.load_many([str(tmp_path)]), ["b"])
    assert [s.name for s in train] == ["a", "c"] and [s.name for s in val] == ["b"]


def _long_sequences_tool():
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "tools" / "make_long_sequences.py"
    spec = importlib.util.spec_from_file_location("make_long_sequences", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_long_sequences_play_tracks_back_and_forth(tmp_path):
    tool = _long_sequences_tool()
    src, out = tmp_path / "src", tmp_path / "out"
    _frames(src / "short", 4)
    (src / "short" / "groundtruth.txt").write_text("1,1,10,10\n2,1,10,10\nnan,nan,nan,nan\n4,1,10,10\n")
    _frames(src / "thinned", 5)  # at the cap: left out by --below 5
    (src / "thinned" / "groundtruth.txt").write_text("1,1,10,10\n" * 5)
    assert tool.main(["--src", str(src), "--out", str(out), "--laps", "3", "--below", "5"]) == 0
    (seq,) = ds.load_sequences(out)
    order = [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]  # forward, back, forward; the turning frames not repeated
    assert seq.name == "short" and len(seq) == len(order)
    source = ds.load_sequences(src / "short")[0]
    for k, i in enumerate(order):
        assert Path(seq.frame_paths[k]).resolve() == Path(source.frame_paths[i]).resolve()
        np.testing.assert_array_equal(seq.boxes[k], source.boxes[i])  # NaN rows stay absent
    with pytest.raises(SystemExit):
        tool.main(["--src", str(src), "--out", str(out), "--sequences", "short,missing"])
