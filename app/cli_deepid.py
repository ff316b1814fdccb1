"""``deepscope select`` and ``deepscope convert``: OpenEXR Deep IDs from the command line.

``select`` is OpenEXR's ``deepidselect`` (same query language and results, plus wildcards,
exact matches and negation: see :mod:`core.deepid`); ``convert --to-cryptomatte`` turns the
ids of one manifest group into a Cryptomatte with the flattened beauty.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from core.deepid import (
    IdChannel,
    deep_mask,
    deep_select,
    find_id_channel,
    id_channels,
    parse_query,
    rank_ids,
    resolve,
    select_samples,
    split_and,
    visible_weights,
)
from core.errors import DeepscopeError, SelectionError
from core.hashing import crypto_hash, layer_key
from core.idmanifest import IdManifest, manifest_from_header
from core.model import DeepImage, Part, PixelType

EXIT_OK = 0
EXIT_ERROR = 2

SELECT_EPILOG = """\
terms (as OpenEXR's deepidselect; a sample must match every --and group, and any term of a group):
  blue                substring of any component of any manifest entry
  material:blue       substring of the component 'material' only
  particleid:3        the numeric id 3 in the UINT channel 'particleid'
                      (or in a 64-bit pair by its name: model:17511330964567540308)
extensions:
  blob*  */big  b?ue  wildcards; the pattern must match the whole component
  =blob/big           the whole component exactly (also material:=blue)
  not:material:blue   negation: samples matching it are removed from the group
                      (a group with only negative terms starts from every sample);
                      '-term' works too, but only after '--' (FILE -o OUT -- blue -blob --and ...)
--mask writes the Deep IDs shallow mask (visible selected alpha / total alpha) as a float32 'A'
image with the same windows; without it the output is a deep file with only the selected samples.
"""

CONVERT_EPILOG = """\
Each pixel's ids are ranked by visible coverage (alpha times the transparency in front, so a pixel's
coverages sum to its flattened alpha) and the top --ranks are written as <Layer>00.R/G/B/A, ...
(FLOAT: id, coverage, id, coverage), with the flattened R, G, B, A (FLOAT) and the cryptomatte/<key>/name,
hash, conversion and manifest metadata. The Cryptomatte name of an id is its manifest entry with the
components joined by ';' (the text OpenEXR hashes, e.g. 'circle/medium;blue'); an id with no entry
is named by its decimal value. Its Cryptomatte id is MurmurHash3_32 of that name (with the
Cryptomatte exponent fix-up).
"""


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``select`` and ``convert`` on the ``deepscope`` subcommand parser."""
    p = subparsers.add_parser(
        "select", help="select Deep IDs by name (like OpenEXR's deepidselect): a mask or a deep subset",
        epilog=SELECT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a deep OpenEXR file with IDs")
    p.add_argument("terms", nargs="+", metavar="TERM", help="query terms (see below)")
    p.add_argument("--and", dest="and_groups", action="append", nargs="+", default=[], metavar="TERM",
                   help="start a new group of terms that must also match")
    p.add_argument("--mask", action="store_true", help="write a float32 'A' mask instead of a deep file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.exr")
    p.add_argument("--part", type=int, default=None, metavar="N",
                   help="part index (default: the first deep part)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print deepidselect's 'adding match' lines on stderr")
    p.set_defaults(func=cmd_select)

    p = subparsers.add_parser(
        "convert", help="convert Deep IDs to a Cryptomatte (ranked visible coverage) with the beauty",
        epilog=CONVERT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a deep OpenEXR file with IDs")
    p.add_argument("--to-cryptomatte", action="store_true", required=True,
                   help="write a Cryptomatte (the only conversion so far)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.exr")
    p.add_argument("--ranks", type=int, default=6, metavar="N", help="id/coverage ranks to keep (default 6)")
    p.add_argument("--group", default=None, metavar="NAME",
                   help="the ids to convert: an id channel (materialid, model, model.id0) or a manifest "
                        "component (material); needed when the file has several")
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="Cryptomatte layer name (default: 'Crypto' + the components, e.g. CryptoMaterial)")
    p.add_argument("--part", type=int, default=None, metavar="N",
                   help="part index (default: the first deep part)")
    p.set_defaults(func=cmd_convert)


# --------------------------------------------------------------------------- shared


def _deep_part(path: str, index: int | None) -> tuple[Part, IdManifest | None]:
    """The deep part to work on (loaded) and its manifest (else part 0's, as deepidselect does)."""
    from core.exr_read import open_exr, read_headers

    headers = read_headers(path)
    if index is None:
        index = next((h.index for h in headers if h.is_deep), None)
        if index is None:
            raise SelectionError(f"{path}: no deep part (Deep IDs need deep data)")
    elif not 0 <= index < len(headers):
        raise SelectionError(f"{path}: there is no part {index} (the file has {len(headers)})")
    if not headers[index].is_deep:
        raise SelectionError(f"{path}: part {index} is not deep")
    doc = open_exr(path, parts=[index])
    part = doc.parts[index]
    manifest = manifest_from_header(part.header, path)
    if manifest is None and index != 0:
        manifest = manifest_from_header(doc.parts[0].header, path)
    return part, manifest


def _check_output(output: str, source: str) -> None:
    """Refuse, before any work, to write over the file being read."""
    try:
        same = os.path.exists(output) and os.path.samefile(output, source)
    except OSError:
        same = False
    if same:
        raise SelectionError(f"{output}: refusing to overwrite the file being read")


def _error(message: str) -> int:
    print(f"deepscope: {message}", file=sys.stderr)
    return EXIT_ERROR


# --------------------------------------------------------------------------- select


def cmd_select(args: argparse.Namespace) -> int:
    """``deepscope select``: a Deep IDs mask or deep subset of the samples a query picks."""
    try:
        return _select(args)
    except DeepscopeError as exc:
        return _error(str(exc))


def _select(args: argparse.Namespace) -> int:
    from core.writer import carry_over_attributes, write_deep, write_flat

    groups = split_and(args.terms)
    for extra in args.and_groups:
        groups.extend(split_and(["--and", *extra])[1:])
    query = parse_query(groups)
    _check_output(args.output, args.file)
    part, manifest = _deep_part(args.file, args.part)
    image = part.image
    assert isinstance(image, DeepImage)
    needs_names = any(t.kind != "number" for g in query.groups for t in g)
    if manifest is None and needs_names:
        raise SelectionError(f"{args.file}: no ID manifest (idManifest or objectID) to look names up in")
    selection = resolve(query, manifest, image)
    if args.verbose:
        for line in selection.log_lines():
            print(line, file=sys.stderr)
    selected = select_samples(image, selection)
    if not selected.any():
        what = "no id in the manifest matches" if not selection.matches else "no sample has the ids of"
        print(f"deepscope: warning: {args.file}: {what} '{query}'", file=sys.stderr)
    if args.mask:
        if "A" not in image.channels:
            raise SelectionError(f"{args.file}: the deep image has no 'A' channel to build a mask from")
        mask = deep_mask(image, selected)
        write_flat(args.output, {"A": mask}, image.data_window, image.display_window,
                   pixel_types={"A": PixelType.FLOAT}, source=args.file)
        print(f"wrote {args.output}: mask of {int(selected.sum())} of {image.total_samples} samples")
    else:
        subset = deep_select(image, selected)
        id_manifest = manifest if manifest is not None and manifest.source == "idManifest" else None
        compression = part.header.compression if part.header.compression in ("NONE", "RLE", "ZIPS") else "ZIPS"
        write_deep(args.output, subset, compression=compression, attributes=carry_over_attributes(part.header),
                   id_manifest=id_manifest, source=args.file)
        print(f"wrote {args.output}: {subset.total_samples} of {image.total_samples} samples")
    return EXIT_OK


# --------------------------------------------------------------------------- convert


def _pick_channel(channels: list[IdChannel], manifest: IdManifest | None, name: str | None,
                  path: str) -> IdChannel:
    if not channels:
        raise SelectionError(f"{path}: no id channels")
    if name is None:
        named = [c for c in channels if c.group_index is not None and manifest is not None
                 and manifest.groups[c.group_index].entries]
        if len(channels) == 1:
            return channels[0]
        if len(named) == 1:
            return named[0]
        raise SelectionError(f"{path}: several id channels, choose one with --group: "
                             f"{', '.join(c.name for c in channels)}")
    found = find_id_channel(channels, name)
    if found is None and manifest is not None:
        hits = [c for c in channels if c.group_index is not None
                and name in manifest.groups[c.group_index].components]
        if len(hits) == 1:
            found = hits[0]
    if found is None:
        raise SelectionError(f"{path}: no id channel or component {name!r} "
                             f"(id channels: {', '.join(c.name for c in channels)})")
    return found


def _layer_name(channel: IdChannel, manifest: IdManifest | None) -> str:
    comps = manifest.groups[channel.group_index].components if manifest and channel.group_index is not None else []
    words = comps or [channel.name]
    return "Crypto" + "".join(w[:1].upper() + w[1:] for w in words if w)


def cryptomatte_names(values: np.ndarray, channel: IdChannel, manifest: IdManifest | None) -> dict[int, str]:
    """The Cryptomatte name of every id in ``values``: its entry joined by ';', else its decimal value."""
    group = manifest.groups[channel.group_index] if manifest and channel.group_index is not None else None
    names = {}
    for v in np.unique(values).tolist():
        entry = group.entries.get(v) if group is not None else None
        names[v] = ";".join(entry) if entry is not None else str(v)
    return names


def cmd_convert(args: argparse.Namespace) -> int:
    """``deepscope convert --to-cryptomatte``: ranked visible coverage of one id kind, plus the beauty."""
    try:
        return _convert(args)
    except DeepscopeError as exc:
        return _error(str(exc))


def _convert(args: argparse.Namespace) -> int:
    from core.kernels import flatten
    from core.writer import write_flat

    if args.ranks < 1:
        raise SelectionError(f"--ranks must be at least 1, got {args.ranks}")
    _check_output(args.output, args.file)
    part, manifest = _deep_part(args.file, args.part)
    image = part.image
    assert isinstance(image, DeepImage)
    if "A" not in image.channels:
        raise SelectionError(f"{args.file}: the deep image has no 'A' channel (coverage needs alpha)")
    channel = _pick_channel(id_channels(image, manifest), manifest, args.group, args.file)
    layer = args.layer or _layer_name(channel, manifest)
    if not layer or any(c in layer for c in "\n\r"):
        raise SelectionError(f"bad Cryptomatte layer name {layer!r}")

    values = channel.values(image.channels)
    unique, inverse = np.unique(values, return_inverse=True)
    names = cryptomatte_names(unique, channel, manifest)
    hashes = np.array([crypto_hash(names[v]) for v in unique.tolist()], dtype=np.uint64)
    crypto_ids = hashes[inverse.reshape(-1)] if unique.size else np.zeros(0, np.uint64)
    weights = visible_weights(image)
    r_ids, r_w = rank_ids(image.offsets, crypto_ids, weights, args.ranks, (image.height, image.width))

    channels: dict[str, np.ndarray] = {}
    pixel_types: dict[str, PixelType] = {}
    beauty = [c for c in ("R", "G", "B", "A") if c in image.channels]
    flat = flatten(image, beauty)
    for c in beauty:
        channels[c] = flat[c]
        pixel_types[c] = PixelType.FLOAT
    n_sets = (args.ranks + 1) // 2
    rank_floats = r_ids.astype(np.uint32).view(np.float32)
    for k in range(n_sets):
        for j, suffix in enumerate(("R", "G", "B", "A")):
            rank = 2 * k + j // 2
            name = f"{layer}{k:02d}.{suffix}"
            if rank >= args.ranks:
                arr = np.zeros((image.height, image.width), np.float32)
            elif j % 2 == 0:
                arr = np.ascontiguousarray(rank_floats[:, :, rank])
            else:
                arr = np.ascontiguousarray(r_w[:, :, rank])
            channels[name] = arr
            pixel_types[name] = PixelType.FLOAT
    manifest_json = json.dumps({names[v]: f"{int(h):08x}" for v, h in zip(unique.tolist(), hashes.tolist(),
                                                                        strict=True)},
                               sort_keys=True, ensure_ascii=False)
    key = layer_key(layer)
    attributes = {
        f"cryptomatte/{key}/name": layer,
        f"cryptomatte/{key}/hash": "MurmurHash3_32",
        f"cryptomatte/{key}/conversion": "uint32_to_float32",
        f"cryptomatte/{key}/manifest": manifest_json,
    }
    write_flat(args.output, channels, image.data_window, image.display_window, pixel_types=pixel_types,
               attributes=attributes, source=args.file)
    print(f"wrote {args.output}: Cryptomatte '{layer}' ({args.ranks} ranks, {len(names)} ids from "
          f"{channel.name}) with {', '.join(beauty) or 'no beauty'}")
    return EXIT_OK


__all__ = ["EXIT_ERROR", "EXIT_OK", "add_parsers", "cmd_convert", "cmd_select", "cryptomatte_names"]
