"""``deepscope matte``: extract a Cryptomatte matte, or list a layer's names, headless.

``deepscope matte FILE --layer NAME --select TOKEN [TOKEN ...] -o OUT.exr|OUT.png`` keys the
selected ids exactly as the Nuke Cryptomatte gizmo does (float32 sum of the coverage of
every rank holding a selected id) and writes the matte. ``--list`` prints the names and
ids of the layer (or of every layer).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from core.cryptomatte import (
    CryptoLayer,
    CryptoRanks,
    crypto_matte,
    crypto_ranks,
    find_document_crypto_layers,
    id_coverage,
    select_layer,
)
from core.errors import DeepscopeError, SelectionError
from core.hashing import bits_to_float, crypto_hash
from core.model import Box, FlatImage
from core.selection import Selection, format_id, has_wildcards, parse_matte_list

EXIT_OK = 0
EXIT_ERROR = 2

EPILOG = """\
selection tokens (one per argument; --matte-list takes a whole Nuke matte list instead):
  Box001              a manifest name (a name missing from the manifest keys by its hash)
  '*flower*' 'obj_?'  wildcards (* ? [...]), matched case-sensitively against the manifest
  'has_\\*_asterisk'   a backslash makes * ? [ ] \\ literal
  '<3.36000126251e-27>'  an id with no name: the float32 whose bits are the id (as --list shows)
output: .exr is a float32 'A' channel with the source's data and display windows; .png is a 16-bit
grey image of the display window (the matte clipped to [0, 1]).
"""


def add_parser(subparsers) -> None:
    """Register ``matte`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "matte",
        help="extract a Cryptomatte matte (names, wildcards or <float> ids) or --list a layer's names",
        description="Extract a Cryptomatte matte exactly as the Nuke gizmo keys it, or list names and ids.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="an OpenEXR file with a Cryptomatte")
    p.add_argument(
        "--layer",
        metavar="NAME",
        help="Cryptomatte layer name (or metadata key); optional when the file has one layer",
    )
    p.add_argument("--part", type=int, metavar="N", help="only consider layers in part N")
    p.add_argument("--select", nargs="+", default=[], metavar="TOKEN", help="names, wildcards or <float> ids")
    p.add_argument(
        "--matte-list", metavar="TEXT", help='a Nuke matte list, e.g. "bunny, \\"a, b\\", <1.5e-3>"'
    )
    p.add_argument("-o", "--output", metavar="OUT", help="output .exr (float32 A) or .png (16-bit)")
    p.add_argument(
        "--list", action="store_true", help="print the layer's names and ids (hex and float) and exit"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail when a token matches no manifest name (default: warn and key by hash)",
    )
    p.add_argument(
        "--compression",
        default="ZIP",
        choices=["NONE", "RLE", "ZIPS", "ZIP", "PIZ"],
        help="EXR output compression (default ZIP)",
    )
    p.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"deepscope matte: {message}", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    """The ``matte`` command. Errors print one line and return 2."""
    try:
        return _run(args)
    except DeepscopeError as exc:
        return _error(str(exc))
    except OSError as exc:
        where = exc.filename or args.file
        return _error(f"{where}: {exc.strerror or exc}")


def _find_layers(path: str) -> tuple[list[CryptoLayer], list]:
    from core.exr_read import open_exr

    doc = open_exr(path, load=False)
    headers = [p.header for p in doc.parts]
    layers = find_document_crypto_layers(headers, path)
    if not layers and any(not h.is_deep for h in headers):
        # no metadata, no Crypto* names: look at the pixels for id-like rank groups
        doc = open_exr(path, load=True, parts=[h.index for h in headers if not h.is_deep])
        images = [p.image if isinstance(p.image, FlatImage) else None for p in doc.parts]
        layers = find_document_crypto_layers(headers, path, images)
    return layers, headers


def _load_ranks(
    path: str, layer: CryptoLayer, images: dict[int, object] | None = None
) -> tuple[CryptoRanks, FlatImage]:
    """The layer's stacked ranks; ``images`` keeps parts already read during this command."""
    from core.exr_read import open_exr

    images = {} if images is None else images
    if layer.part_index not in images:
        images[layer.part_index] = (
            open_exr(path, load=True, parts=[layer.part_index]).parts[layer.part_index].image
        )
    image = images[layer.part_index]
    if not isinstance(image, FlatImage):
        raise SelectionError(f"{path}: part {layer.part_index} is deep; Cryptomatte layers are flat")
    return crypto_ranks(layer, image, path), image


def _run(args: argparse.Namespace) -> int:
    path = args.file
    if not os.path.exists(path):
        return _error(f"{path}: no such file")
    layers, _headers = _find_layers(path)
    if not layers:
        return _error(f"{path}: no Cryptomatte layer found")
    if args.list:
        pool = (
            [select_layer(layers, args.layer, args.part)]
            if (args.layer or args.part is not None or len(layers) == 1)
            else layers
        )
        images: dict[int, object] = {}
        for layer in pool:
            _print_listing(path, layer, images)
        return EXIT_OK
    if not args.output:
        return _error("an output file is needed: -o OUT.exr or -o OUT.png (or use --list)")
    tokens = list(args.select)
    if args.matte_list:
        tokens.extend(parse_matte_list(args.matte_list))
    if not tokens:
        return _error("nothing selected: give --select TOKEN ... or --matte-list TEXT")
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".exr", ".png"):
        return _error(f"{args.output}: the output must end in .exr or .png")
    layer = select_layer(layers, args.layer, args.part)
    selection = Selection(tokens, layer.manifest)
    unmatched = selection.unmatched()
    patterns = [t for t in unmatched if has_wildcards(t)]
    names = [t for t in unmatched if not has_wildcards(t)]
    messages = []
    if patterns:
        messages.append(f"{', '.join(patterns)}: no manifest name matches, selects nothing")
    if names:
        where = "in the manifest" if layer.manifest else "checked (the layer has no manifest)"
        messages.append(f"{', '.join(names)}: not {where}, keyed by the hash of the name")
    for message in messages:
        if args.strict:
            return _error(message)
        print(f"deepscope matte: warning: {message}", file=sys.stderr)
    ranks, image = _load_ranks(path, layer)
    matte = crypto_matte(ranks.ids, ranks.coverage, selection.ids)
    if ext == ".exr":
        from core.writer import write_flat

        write_flat(
            args.output,
            {"A": matte},
            image.data_window,
            image.display_window,
            compression=args.compression,
            source=path,
        )
    else:
        from core.writer import write_png16

        write_png16(
            args.output, _on_display_window(matte, image.data_window, image.display_window), source=path
        )
    print(
        f"wrote {args.output}: layer {layer.name}, {len(selection.ids)} ids ({selection.matte_list()}), "
        f"{int(np.count_nonzero(matte > 0))} pixels > 0, sum {float(matte.sum(dtype=np.float64)):.6g}"
    )
    return EXIT_OK


def _on_display_window(matte: np.ndarray, data: Box, display: Box) -> np.ndarray:
    """The matte placed on the display window (zero outside the data window)."""
    out = np.zeros((display.height, display.width), dtype=np.float32)
    x0, y0 = max(data.xmin, display.xmin), max(data.ymin, display.ymin)
    x1, y1 = min(data.xmax, display.xmax), min(data.ymax, display.ymax)
    if x0 <= x1 and y0 <= y1:
        out[y0 - display.ymin : y1 - display.ymin + 1, x0 - display.xmin : x1 - display.xmin + 1] = matte[
            y0 - data.ymin : y1 - data.ymin + 1, x0 - data.xmin : x1 - data.xmin + 1
        ]
    return out


def _print_listing(path: str, layer: CryptoLayer, images: dict[int, object]) -> None:
    out = sys.stdout
    out.write(
        f"{layer.name} (key {layer.key or '-'}, part {layer.part_index}, {layer.num_ranks} ranks, "
        f"manifest {layer.manifest_source}, {len(layer.manifest)} names)\n"
    )
    for problem in layer.problems:
        out.write(f"  problem: {problem}\n")
    stats: dict[int, tuple[int, float]] | None = None
    try:
        ranks, _ = _load_ranks(path, layer, images)
    except DeepscopeError as exc:
        print(f"deepscope matte: warning: no pixel statistics: {exc}", file=sys.stderr)
    else:
        ids, sums, counts = id_coverage(ranks.ids, ranks.coverage)
        stats = {int(i): (int(c), float(s)) for i, s, c in zip(ids, sums, counts, strict=True)}

    def row(value: int, label: str) -> str:
        if stats is None:
            count, cov = "-", "-"
        else:
            n, c = stats.get(int(value), (0, 0.0))
            count, cov = str(n), f"{c:.4f}"
        return f"  {int(value):08x}  {_float_text(value):20}  {count:>8}  {cov:>12}  {label}\n"

    out.write(f"  {'hex':8}  {'float id':20}  {'pixels':>8}  {'coverage':>12}  name\n")
    for name, value in sorted(layer.manifest.items(), key=lambda kv: (kv[0].lower(), kv[0])):
        out.write(row(value, name))
    named = set(layer.names_by_id)
    for value in sorted(i for i in (stats or {}) if i not in named):
        out.write(row(value, _unnamed(value)))


def _float_text(value: int) -> str:
    text = format_id(value)
    return text if np.isfinite(bits_to_float(int(value))) else f"{text} (not a valid id)"


def _unnamed(value: int) -> str:
    if value & 0x7FFFFFFF == 0:
        return "(id 0: background, not in manifest)"
    if value == crypto_hash(""):
        return '(not in manifest: the hash of the empty name "")'
    return "(not in manifest)"
