import sys

from .cli.main import main

if __name__ == "__main__":  # not when a batch's reader process (spawn) imports the parent's main module
    sys.exit(main())
