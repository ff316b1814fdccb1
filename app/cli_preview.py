"""``deepscope defocus`` and ``deepscope recolor``: the preview effects, headless.

Both read one deep part, write an RGBA float32 EXR with the input's data and display windows
(atomically, never over the input) and report errors on one line with exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from core.deepid import parse_query, resolve, split_and
from core.errors import DeepscopeError, SelectionError
from core.model import DeepImage, Part, PixelType

EXIT_OK = 0
EXIT_ERROR = 2

DEFOCUS_EPILOG = """\
The thin-lens camera: focal length and sensor width in mm, the focus distance in the file's depth
units, and --units-to-m to convert those units to metres (0.01 for centimetres). Values the renderer
wrote in the header (focal length, f-stop, focus distance, film aperture, field of view) are used
for any option left out. --blur-per-unit is the one-control mode for files with no known units: a
blur radius of that many pixels per depth unit away from the focus distance.
"""

RECOLOR_EPILOG = """\
terms are those of 'deepscope select' (deepidselect's query language): e.g. material:blue,
particleid:3, blob*, =blob/big, not:material:green; --and starts a group that must also match.
Grades combine: gain, then saturation, then hue, then the per-id variation, then the tint mix.
--remove drops the selected objects; --keep-percent keeps that share of the selected ids (chosen
by a hash of each id, so the same ids stay on every frame); --vary SEED gives each selected id its
own hue and gain. --id-channel names the ids used by --keep-percent and --vary (default: the first
id channel the query uses).
"""


def _triple(text: str) -> tuple[float, float, float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        parts = parts * 3
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected R,G,B numbers, got {text!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected three finite numbers R,G,B, got {text!r}")
    return values  # type: ignore[return-value]


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("expected a number, got nan")
    return value


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``defocus`` and ``recolor`` on the ``deepscope`` subcommand parser."""
    p = subparsers.add_parser(
        "defocus", help="deep depth of field with a thin-lens camera: a flat RGBA EXR",
        epilog=DEFOCUS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a deep OpenEXR file with Z")
    p.add_argument("--focus-distance", type=_number, default=None, metavar="D",
                   help="distance in focus, in depth units (default: from the header)")
    lens = p.add_mutually_exclusive_group()
    lens.add_argument("--fstop", type=_number, default=None, metavar="F", help="f-number (default: from the header)")
    lens.add_argument("--blur-per-unit", type=_number, default=None, metavar="PX",
                      help="simple mode: blur radius in pixels per depth unit from the focus distance")
    p.add_argument("--focal-length", type=_number, default=None, metavar="MM", help="default: header, else 50")
    p.add_argument("--sensor-width", type=_number, default=None, metavar="MM", help="default: header, else 36")
    p.add_argument("--units-to-m", type=_number, default=1.0, metavar="S",
                   help="metres per depth unit (default 1)")
    p.add_argument("--max-radius", type=_number, default=None, metavar="PX",
                   help="largest blur radius in pixels (default 64)")
    p.add_argument("--part", type=int, default=None, metavar="N", help="part index (default: the first deep part)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.exr")
    p.set_defaults(func=cmd_defocus)

    p = subparsers.add_parser(
        "recolor", help="grade, remove, thin or vary objects by id in a deep image: a flat RGBA EXR",
        epilog=RECOLOR_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a deep OpenEXR file with ids")
    p.add_argument("--select", dest="terms", nargs="+", required=True, metavar="TERM", help="query terms")
    p.add_argument("--and", dest="and_groups", action="append", nargs="+", default=[], metavar="TERM",
                   help="a group of terms that must also match")
    p.add_argument("--gain", type=_triple, default=None, metavar="R,G,B", help="multiply each channel")
    p.add_argument("--saturation", type=_number, default=None, metavar="S", help="0 grey, 1 unchanged")
    p.add_argument("--hue", type=_number, default=None, metavar="DEG", help="rotate the hue by DEG degrees")
    p.add_argument("--tint", type=_triple, default=None, metavar="R,G,B", help="a flat colour, mixed in by --mix")
    p.add_argument("--mix", type=_number, default=None, metavar="M", help="tint mix, 0..1 (default 1 with --tint)")
    p.add_argument("--remove", action="store_true", help="drop the selected objects")
    p.add_argument("--keep-percent", type=_number, default=None, metavar="P",
                   help="keep P%% of the selected ids, drop the others")
    p.add_argument("--vary", type=int, default=None, metavar="SEED", help="a per-id hue and gain variation")
    p.add_argument("--vary-amount", type=_number, default=0.5, metavar="A",
                   help="strength of --vary, 0..1 (default 0.5: up to 90 degrees of hue, gain 0.75..1.25)")
    p.add_argument("--id-channel", default=None, metavar="NAME", help="the ids for --keep-percent and --vary")
    p.add_argument("--part", type=int, default=None, metavar="N", help="part index (default: the first deep part)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.exr")
    p.set_defaults(func=cmd_recolor)


# --------------------------------------------------------------------------- shared


def _error(message: str) -> int:
    print(f"deepscope: {message}", file=sys.stderr)
    return EXIT_ERROR


def _check_output(output: str, source: str) -> None:
    """Refuse, before any work, to write over the file being read."""
    try:
        same = os.path.exists(output) and os.path.samefile(output, source)
    except OSError:
        same = False
    if same:
        raise SelectionError(f"{output}: refusing to overwrite the file being read")


def _deep_part(path: str, index: int | None) -> tuple[Part, list[Part]]:
    """The deep part to work on (loaded), and every part's header (unloaded) for metadata."""
    from core.exr_read import open_exr

    doc = open_exr(path, load=False)
    if index is None:
        index = next((p.index for p in doc.parts if p.is_deep), None)
        if index is None:
            raise SelectionError(f"{path}: no deep part")
    elif not 0 <= index < len(doc.parts):
        raise SelectionError(f"{path}: there is no part {index} (the file has {len(doc.parts)})")
    if not doc.parts[index].is_deep:
        raise SelectionError(f"{path}: part {index} is not deep")
    loaded = open_exr(path, parts=[index])
    return loaded.parts[index], doc.parts


def _write_rgba(output: str, result: dict, image: DeepImage, source: str) -> None:
    from core.writer import write_flat

    channels = {c: result[c] for c in ("R", "G", "B", "A") if c in result}
    write_flat(output, channels, image.data_window, image.display_window,
               pixel_types={c: PixelType.FLOAT for c in channels}, source=source)


# --------------------------------------------------------------------------- defocus


def cmd_defocus(args: argparse.Namespace) -> int:
    """``deepscope defocus``: the deep image through a thin lens, flattened to RGBA."""
    try:
        return _defocus(args)
    except DeepscopeError as exc:
        return _error(str(exc))


def _defocus(args: argparse.Namespace) -> int:
    from core.defocus import DEFAULT_MAX_RADIUS, DefocusError, SimpleBlur, ThinLens, defocus, guess_camera

    _check_output(args.output, args.file)
    part, _ = _deep_part(args.file, args.part)
    image = part.image
    assert isinstance(image, DeepImage)
    if "Z" not in image.channels:
        raise DefocusError(f"{args.file}: the deep part has no Z channel")
    guess = guess_camera(part.header)
    focus = args.focus_distance if args.focus_distance is not None else guess.focus_distance
    if focus is None:
        raise DefocusError(f"{args.file}: no focus distance in the header: give --focus-distance")
    notes = []

    def pick(given, guessed, field: str, label: str, default):
        if given is not None:
            return given
        if guessed is not None:
            notes.append(f"{label} {guessed:g} from {guess.sources.get(field, 'the header')}")
            return guessed
        return default

    if args.focus_distance is None:
        pick(None, focus, "focus_distance", "focus distance", None)
    if args.blur_per_unit is not None:
        camera = SimpleBlur(focus, args.blur_per_unit)
    else:
        focal = pick(args.focal_length, guess.focal_length_mm, "focal_length_mm", "focal length", 50.0)
        sensor = pick(args.sensor_width, guess.sensor_width_mm, "sensor_width_mm", "sensor width", 36.0)
        f_stop = pick(args.fstop, guess.f_stop, "f_stop", "f-stop", None)
        if f_stop is None and guess.aperture_radius:
            f_stop = focal / (2.0 * guess.aperture_radius * args.units_to_m * 1000.0)
            notes.append(f"f-stop {f_stop:g} from {guess.sources.get('aperture_radius')}")
        if f_stop is None:
            raise DefocusError(f"{args.file}: no f-stop in the header: give --fstop (or --blur-per-unit)")
        camera = ThinLens(focus_distance=focus, f_stop=f_stop, focal_length_mm=focal, sensor_width_mm=sensor,
                          units_to_m=args.units_to_m)
    max_radius = args.max_radius if args.max_radius is not None else DEFAULT_MAX_RADIUS
    result = defocus(image, camera, max_radius=max_radius)
    _write_rgba(args.output, result, image, args.file)
    for note in notes:
        print(f"deepscope: {note}", file=sys.stderr)
    print(f"wrote {args.output}: defocus of {image.total_samples} samples, {image.width}x{image.height}")
    return EXIT_OK


# --------------------------------------------------------------------------- recolor


def cmd_recolor(args: argparse.Namespace) -> int:
    """``deepscope recolor``: the selected objects graded, removed, thinned or varied, flattened to RGBA."""
    try:
        return _recolor(args)
    except DeepscopeError as exc:
        return _error(str(exc))


def _grade(args: argparse.Namespace):
    from core.recolor import Grade

    wanted = [args.gain is not None, args.saturation is not None, args.hue is not None, args.tint is not None,
              args.remove, args.keep_percent is not None, args.vary is not None]
    if not any(wanted):
        raise SelectionError("say what to do: --gain, --saturation, --hue, --tint, --remove, --keep-percent or --vary")
    if args.mix is not None and args.tint is None:
        raise SelectionError("--mix needs --tint")
    grade = Grade(
        gain=args.gain if args.gain is not None else (1.0, 1.0, 1.0),
        saturation=args.saturation if args.saturation is not None else 1.0,
        hue=args.hue if args.hue is not None else 0.0,
        tint=args.tint if args.tint is not None else (1.0, 1.0, 1.0),
        mix=(args.mix if args.mix is not None else 1.0) if args.tint is not None else 0.0,
        remove=args.remove,
        keep_percent=args.keep_percent if args.keep_percent is not None else 100.0,
        vary_seed=args.vary,
        vary_amount=args.vary_amount if args.vary is not None else 0.0,
    )
    grade.validate()
    return grade


def _recolor(args: argparse.Namespace) -> int:
    from core.idmanifest import manifest_from_header
    from core.recolor import recolor, select_ids

    grade = _grade(args)
    groups = split_and(args.terms)
    for extra in args.and_groups:
        groups.append(list(extra))
    query = parse_query(groups)
    _check_output(args.output, args.file)
    part, parts = _deep_part(args.file, args.part)
    image = part.image
    assert isinstance(image, DeepImage)
    for c in ("R", "G", "B"):
        if c not in image.channels:
            raise SelectionError(f"{args.file}: the deep part has no {c} channel to recolor")
    manifest = manifest_from_header(part.header, args.file)
    if manifest is None and part.index != 0:
        manifest = manifest_from_header(parts[0].header, args.file)
    if manifest is None and any(t.kind != "number" for g in query.groups for t in g):
        raise SelectionError(f"{args.file}: no ID manifest (idManifest or objectID) to look names up in")
    selection = resolve(query, manifest, image)
    chosen = select_ids(image, selection, channel=args.id_channel)
    if grade.needs_ids and chosen.id_low is None:
        raise SelectionError(f"{args.file}: the query uses no id channel: give --id-channel for "
                             "--keep-percent or --vary")
    if chosen.count == 0:
        what = "no id in the manifest matches" if not selection.matches else "no sample has the ids of"
        print(f"deepscope: warning: {args.file}: {what} '{query}'", file=sys.stderr)
    result = recolor(image, chosen, grade)
    _write_rgba(args.output, result, image, args.file)
    print(f"wrote {args.output}: recolored {chosen.count} of {image.total_samples} samples")
    return EXIT_OK


__all__ = ["EXIT_ERROR", "EXIT_OK", "add_parsers", "cmd_defocus", "cmd_recolor"]
