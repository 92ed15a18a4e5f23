"""What the project's command lines share (standard library only)."""

import argparse


def positive_int(text: str) -> int:
    """argparse type for counts (workers, GPUs, seeds per method, cycles, batch sizes): a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type for counts that may be 0 (GPUs per Slurm job): a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be >= 0")
    return value
