"""User mistakes versus bugs. A mistake (a bad path, an unknown name, an invalid store, a bad value)
prints one line, `error: ...`, and exits with code 1; a bug keeps its traceback. EMBODIED_DEBUG=1 shows
the traceback of a mistake too."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class UserError(ValueError):
    """Something the user gave is wrong; the message names it and says what is expected."""


USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)


def cli(main: Callable[[], object]) -> None:
    """Run a script's or command's main (argument parsing included) with one-line errors."""
    try:
        main()
    except USER_ERRORS as e:
        if os.environ.get("EMBODIED_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
