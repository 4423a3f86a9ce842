"""`odin-compat` / `python -m odin_compat`: the command line."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odin-compat", description="Repairs for version skew in the HF training stack."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    doctor = commands.add_parser(
        "doctor", help="report the environment, the records that apply, known-bad combinations"
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    doctor.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a known crash is not repaired by odin, or odin is not active where it is needed",
    )
    doctor.add_argument(
        "--entry",
        action="append",
        default=[],
        metavar="SCRIPT",
        help="an entry script of the job: --check accepts it when it imports odin_compat first (repeatable)",
    )
    doctor.add_argument(
        "--lock",
        metavar="FILE",
        help="forecast a lock file instead (uv.lock, poetry.lock, pylock.toml, pinned requirements.txt); "
        "installs nothing",
    )

    for name, text in (
        ("install", "activate odin_compat in every interpreter of this environment (.pth + PEP 829 .start)"),
        ("uninstall", "remove the start-up files written by install"),
        ("status", "say whether the start-up files are installed"),
    ):
        commands.add_parser(name, help=text)

    commands.add_parser(
        "run",
        help="run a command with odin active in every Python process it starts: odin-compat run -- CMD ...",
        add_help=False,
    )

    scan = commands.add_parser(
        "scan", help="list names installed packages import from the HF stack that the installed stack lacks"
    )
    scan.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    scan.add_argument("--all", action="store_true", help="also list imports inside try/if guards")

    catalogue = commands.add_parser("catalogue", help="print the record catalogue as a Markdown table")
    catalogue.add_argument("--output", "-o", help="write it to this file instead of stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # everything after `run` belongs to the command
        from odin_compat import run

        return run.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        if args.lock:
            from odin_compat import forecast

            return forecast.main(args.lock, as_json=args.json, check=args.check)
        from odin_compat import doctor

        return doctor.main(as_json=args.json, check=args.check, entries=tuple(args.entry))
    if args.command in ("install", "uninstall", "status"):
        from odin_compat import startup

        if args.command == "install":
            for path in startup.install():
                print(f"wrote {path}")
        elif args.command == "uninstall":
            removed = startup.uninstall()
            print("\n".join(f"removed {p}" for p in removed) or "nothing to remove")
        else:
            state = "installed" if startup.installed() else "not installed"
            print(f"start-up activation {state} in {startup.site_dir()}")
        return 0
    if args.command == "scan":
        from odin_compat import scan

        return scan.main(as_json=args.json, include_guarded=args.all)
    if args.command == "catalogue":
        from odin_compat import doctor

        text = doctor.catalogue()
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            print(text, end="")
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
