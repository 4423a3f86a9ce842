"""`python -m odin_compat._startup_cli install|uninstall|status` (also wired into `odin-compat`)."""

from __future__ import annotations

import sys

from odin_compat import _startup


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    if command == "install":
        for path in _startup.install():
            print(f"wrote {path}")
    elif command == "uninstall":
        removed = _startup.uninstall()
        print("\n".join(f"removed {p}" for p in removed) or "nothing to remove")
    elif command == "status":
        print("installed" if _startup.installed() else "not installed", "in", _startup.site_dir())
    else:
        print(f"unknown command {command!r}: use install, uninstall or status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
