"""What the project's command lines share (standard library only)."""

import argparse


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r}: must be >= {low}")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts (workers, GPUs, seeds per method, cycles, batch sizes): a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type for counts that may be 0 (GPUs per Slurm job): a whole number >= 0."""
    return _whole_number(text, 0)
