"""``python -m make_us_rich.serving`` == ``mkrich serve`` (the container entry point)."""

import sys

from make_us_rich.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
