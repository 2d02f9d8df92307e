"""Evaluation: the OTB one-pass metrics, a runner for our tracker and OpenCV peers, plots."""
