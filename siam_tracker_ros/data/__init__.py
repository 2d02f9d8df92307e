"""Data: sequences (every data set layout, ground truth), frames and frame sources. Used by training, evaluation,
bench, the demo, the player, the tools and the tests; numpy + OpenCV, no ROS, no torch."""
from .frames import (ArraySource, CaptureSource, FolderSource, FrameSource, data_root, find_sequence, fit_size,
                     load_sequence, open_path, open_source, peers_root, read_frame, read_groundtruth)
from .sequences import (IMAGE_EXTENSIONS, LAYOUTS, READERS, Sequence, detect_layout, format_box_lines, list_images,
                        load_many, load_sequences, parse_box_lines, parse_source, read_box_file, read_flags,
                        read_folder, read_folder_sequence, sanitize_boxes, split_sequences)

__all__ = ["ArraySource", "CaptureSource", "FolderSource", "FrameSource", "data_root", "find_sequence", "fit_size",
           "load_sequence", "open_path", "open_source", "peers_root", "read_frame", "read_groundtruth",
           "IMAGE_EXTENSIONS", "LAYOUTS", "READERS", "Sequence", "detect_layout", "format_box_lines", "list_images",
           "load_many", "load_sequences", "parse_box_lines", "parse_source", "read_box_file", "read_flags",
           "read_folder", "read_folder_sequence", "sanitize_boxes", "split_sequences"]
