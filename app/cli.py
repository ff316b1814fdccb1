"""The ``deepscope`` command: the GUI by default, headless subcommands for batch work.

``deepscope`` opens the GUI on the built-in demo scene, ``deepscope FILE`` opens a file,
and ``deepscope info|flatten|demo|matte|select|convert ...`` run without a display.
Errors are one line naming the file and the problem, with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from core.errors import DeepscopeError

EXIT_OK = 0
EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line with exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _cmd_view(args: argparse.Namespace) -> int:
    from app.gui import run_gui

    if args.file is not None and not os.path.exists(args.file):
        print(f"deepscope: {args.file}: no such file", file=sys.stderr)
        return EXIT_ERROR
    return run_gui(args.file)


def _cmd_info(args: argparse.Namespace) -> int:
    from core.exr_read import open_exr
    from core.info import document_info, format_info

    doc = open_exr(args.file, load=not args.headers_only)
    info = document_info(doc)
    if args.json:
        json.dump(info, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_info(info))
    return EXIT_OK


def _cmd_flatten(args: argparse.Namespace) -> int:
    from core.info import flatten_document_part
    from core.writer import write_flat

    part, channels = flatten_document_part(args.file, args.part)
    write_flat(args.output, channels, part.image.data_window, part.image.display_window,
               compression=args.compression, source=args.file)
    print(f"wrote {args.output} ({', '.join(channels)}; {part.image.width}x{part.image.height})")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import render_demo, write_demo

    os.makedirs(args.output, exist_ok=True)
    paths = write_demo(args.output, scene=render_demo(args.width, args.height))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepscope",
        description="Viewer and inspector for deep OpenEXR images and ID mattes (Cryptomatte, OpenEXR Deep IDs).",
        epilog="Run 'deepscope' alone to open the built-in demo scene, or 'deepscope FILE' to open a file. "
        "'deepscope COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("view", help="open the GUI (the default command; the demo scene when no FILE)")
    p.add_argument("file", nargs="?", metavar="FILE", help="an OpenEXR file, deep or flat")
    p.set_defaults(func=_cmd_view)

    p = sub.add_parser("info", help="describe a file: parts, windows, channels, samples, attributes, IDs")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--headers-only", action="store_true", help="do not read pixels (no sample statistics)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("flatten", help="flatten a deep part to RGBA float32 with the same windows")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="OUT.exr")
    p.add_argument("--part", type=int, default=None, metavar="N",
                   help="part index (default: the first deep part, else part 0)")
    p.add_argument("--compression", default="ZIP", choices=["NONE", "RLE", "ZIPS", "ZIP", "PIZ"],
                   help="output compression (default ZIP)")
    p.set_defaults(func=_cmd_flatten)

    p = sub.add_parser("demo", help="write the built-in demo scene (deep EXR, flat Cryptomatte EXR, truth)")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=180)
    p.set_defaults(func=_cmd_demo)

    for register in _plugin_registrars():
        register(sub)
    return parser


def _plugin_registrars() -> list[Callable]:
    """Subcommands that live next to the features they drive (matte, select, convert, defocus, recolor)."""
    from app import cli_deepid, cli_matte, cli_preview

    return [cli_matte.add_parser, cli_deepid.add_parsers, cli_preview.add_parsers]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("deepscope")
    except Exception:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 - argparse internals
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help", "--version")):
        argv = ["view", *argv]
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except DeepscopeError as exc:
        print(f"deepscope: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `deepscope info FILE | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        where = exc.filename or ""
        print(f"deepscope: {where}{': ' if where else ''}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
