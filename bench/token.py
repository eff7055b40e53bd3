"""x."""

import sys


def main() -> int:
    return len(sys.argv)
