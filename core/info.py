"""What ``deepscope info`` reports about a file, as plain JSON-able data, and its text form."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from core.errors import DeepscopeError
from core.layers import group_channels
from core.model import Attribute, Box, ChannelInfo, DeepImage, ExrDocument, FlatImage, PartHeader, RawAttribute


def attribute_value(value: Any) -> Any:
    """A JSON-able form of a decoded attribute value."""
    if isinstance(value, Box):
        return {"min": [value.xmin, value.ymin], "max": [value.xmax, value.ymax]}
    if isinstance(value, ChannelInfo):
        return {"name": value.name, "type": value.pixel_type.name, "sampling": [value.x_sampling, value.y_sampling],
                "pLinear": value.p_linear}
    if isinstance(value, RawAttribute):
        return {"type": value.type_name, "bytes": len(value.data), "head": value.data[:32].hex()}
    if isinstance(value, bytes):
        return {"bytes": len(value), "head": value[:32].hex()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return {k: attribute_value(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [attribute_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): attribute_value(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _deep_stats(image: DeepImage) -> dict[str, Any]:
    counts = np.diff(image.offsets)
    total = int(image.offsets[-1])
    stats = {
        "total_samples": total,
        "max_samples_per_pixel": int(counts.max()) if counts.size else 0,
        "non_empty_pixels": int(np.count_nonzero(counts)),
        "pixels": int(counts.size),
    }
    if counts.size and total:
        i = int(np.argmax(counts))
        stats["max_at"] = [image.data_window.xmin + i % image.width, image.data_window.ymin + i // image.width]
    for name in ("Z", "ZBack"):
        z = image.channels.get(name)
        if z is not None and z.size:
            finite = z[np.isfinite(z)]
            if finite.size:
                stats[f"{name}_range"] = [float(finite.min()), float(finite.max())]
    return stats


def _crypto_layers(doc: ExrDocument) -> list:
    """Every Cryptomatte layer of the document (metadata may sit in another part)."""
    try:
        from core.cryptomatte import find_document_crypto_layers
    except ImportError:
        return []
    images = [p.image if isinstance(p.image, FlatImage) else None for p in doc.parts]
    return find_document_crypto_layers([p.header for p in doc.parts], image_path=doc.path, images=images)


def _crypto_summary(layers: list) -> list[dict[str, Any]]:
    out = []
    for layer in layers:
        described = layer.describe().splitlines()
        out.append({
            "name": layer.name,
            "key": layer.key,
            "hash": layer.hash,
            "conversion": layer.conversion,
            "part": layer.part_index,
            "ranks": layer.num_ranks,
            "rank_channels": [list(pair) for pair in layer.ranks],
            "preview_channels": list(layer.preview_channels),
            "manifest_source": layer.manifest_source,
            "manifest_entries": len(layer.manifest),
            "mapping": [line.strip() for line in described[1:] if not line.strip().startswith("problem:")],
            "problems": list(layer.problems),
        })
    return out


def _manifest_summary(header: PartHeader) -> dict[str, Any] | None:
    try:
        from core.idmanifest import manifest_summary
    except ImportError:
        return None
    try:
        return manifest_summary(header)
    except DeepscopeError as exc:
        return {"error": str(exc)}


def part_info(header: PartHeader, image: DeepImage | FlatImage | None, doc: ExrDocument,
              crypto_layers: list | None = None) -> dict[str, Any]:
    """Everything ``info`` says about one part."""
    info: dict[str, Any] = {
        "index": header.index,
        "name": header.name,
        "type": header.type,
        "compression": header.compression,
        "data_window": attribute_value(header.data_window),
        "display_window": attribute_value(header.display_window),
        "size": [header.data_window.width, header.data_window.height],
        "channels": [{"name": c.name, "type": c.pixel_type.name} for c in header.channels],
    }
    if header.is_tiled:
        info["tiles"] = attribute_value(header.tiles)
    if isinstance(image, DeepImage):
        info["samples"] = _deep_stats(image)
    info["attributes"] = {
        name: {"type": attr.type_name, "value": attribute_value(attr.value)}
        for name, attr in sorted(header.attributes.items())
    }
    crypto = _crypto_summary([c for c in (crypto_layers or []) if c.part_index == header.index])
    if crypto:
        info["cryptomatte"] = crypto
    manifest = _manifest_summary(header)
    if manifest:
        info["id_manifest"] = manifest
    return info


def document_info(doc: ExrDocument) -> dict[str, Any]:
    """The whole ``info`` report of an opened document."""
    try:
        layers = _crypto_layers(doc)
        crypto_error = None
    except DeepscopeError as exc:
        layers, crypto_error = [], str(exc)
    info = {
        "file": doc.path,
        "file_size": doc.file_size,
        "multipart": doc.is_multipart,
        "parts": [part_info(p.header, p.image, doc, layers) for p in doc.parts],
    }
    if crypto_error:
        info["cryptomatte_error"] = crypto_error
    return info


def _fmt_value(attr: Attribute | dict) -> str:
    value = attr["value"]
    if isinstance(value, str):
        text = value if len(value) <= 160 else value[:157] + "..."
        return repr(text) if "\n" in text or text != text.strip() else text
    if isinstance(value, dict) and "min" in value and "max" in value:
        (x0, y0), (x1, y1) = value["min"], value["max"]
        return f"({x0},{y0})-({x1},{y1})"
    if isinstance(value, dict) and "bytes" in value:
        return f"<{value.get('type', 'bytes')}: {value['bytes']} bytes>"
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "..."


def format_info(info: dict[str, Any]) -> str:
    """The text form of ``document_info``."""
    lines = [f"{info['file']}  ({info['file_size']} bytes, {len(info['parts'])} part"
             f"{'s' if len(info['parts']) != 1 else ''})"]
    for part in info["parts"]:
        name = f" {part['name']!r}" if part["name"] else ""
        w, h = part["size"]
        lines.append("")
        lines.append(f"part {part['index']}{name}: {part['type']}, {part['compression']}, {w}x{h}")
        dw, disp = part["data_window"], part["display_window"]
        lines.append(f"  data window    ({dw['min'][0]},{dw['min'][1]})-({dw['max'][0]},{dw['max'][1]})")
        lines.append(f"  display window ({disp['min'][0]},{disp['min'][1]})-({disp['max'][0]},{disp['max'][1]})")
        if "tiles" in part:
            t = part["tiles"]
            lines.append(f"  tiles          {t['x_size']}x{t['y_size']} {t['level_mode']} {t['rounding_mode']}")
        lines.append(f"  channels ({len(part['channels'])}):")
        types = {c["name"]: c["type"][0].lower() for c in part["channels"]}
        for layer in group_channels(types):
            shorts = ", ".join(f"{layer.short_name(c)}:{types[c]}" for c in layer.channels)
            lines.append(f"    {layer.label or '(no layer)'}: {shorts}")
        if "samples" in part:
            s = part["samples"]
            extra = f", max at {tuple(s['max_at'])}" if "max_at" in s else ""
            lines.append(f"  deep samples   {s['total_samples']} total, {s['max_samples_per_pixel']} max per pixel"
                         f"{extra}, {s['non_empty_pixels']} of {s['pixels']} pixels non-empty")
            if "Z_range" in s:
                lines.append(f"  depth          {s['Z_range'][0]:.6g} .. {s['Z_range'][1]:.6g}")
        for layer in part.get("cryptomatte", []):
            if "error" in layer:
                lines.append(f"  cryptomatte    error: {layer['error']}")
                continue
            lines.append(f"  cryptomatte    {layer.get('name')!r} (key {layer.get('key')}): "
                         f"{layer.get('ranks', '?')} ranks, {layer.get('manifest_entries', 0)} names "
                         f"from {layer.get('manifest_source', 'none')}")
            for line in layer.get("mapping", []):
                lines.append(f"                   {line}")
            for problem in layer.get("problems", []):
                lines.append(f"                   problem: {problem}")
        if "id_manifest" in part:
            m = part["id_manifest"]
            if "error" in m:
                lines.append(f"  id manifest    error: {m['error']}")
            for g in m.get("groups", []):
                lines.append(f"  id manifest    channels {', '.join(g['channels'])}: {g['entries']} entries, "
                             f"components {', '.join(g['components'])}, {g['hash_scheme']}, {g['encoding_scheme']}, "
                             f"{g['lifetime']}")
        lines.append("  attributes:")
        for name, attr in part["attributes"].items():
            if name == "channels":
                continue
            lines.append(f"    {name} ({attr['type']}): {_fmt_value(attr)}")
    return "\n".join(lines) + "\n"


def flatten_part_index(doc: ExrDocument, part: int | None) -> int:
    """The part ``flatten`` works on: the one asked for, else the first deep part, else 0."""
    if part is not None:
        if not 0 <= part < len(doc.parts):
            raise DeepscopeError(f"{doc.path}: there is no part {part} (the file has {len(doc.parts)})")
        return part
    return next((p.index for p in doc.parts if p.is_deep), 0)


def flatten_document_part(path: str | os.PathLike, part: int | None = None):
    """Read one part and return (Part, {channel: (H, W) float32}): R, G, B, A flattened.

    A deep part without ``A`` counts its samples as opaque. A flat part is already flat:
    its R, G, B, A (or, if it has none, its float channels) are returned as float32.
    """
    from core.exr_read import open_exr
    from core.kernels import flatten

    doc = open_exr(path, load=False)
    index = flatten_part_index(doc, part)
    doc = open_exr(path, parts=[index])
    p = doc.parts[index]
    image = p.image
    if isinstance(image, DeepImage):
        colours = [c for c in ("R", "G", "B") if c in image.channels]
        flat = flatten(image, channels=colours + (["A"] if "A" in image.channels else []))
        out = {c: np.ascontiguousarray(flat[c], dtype=np.float32) for c in colours}
        if "A" in image.channels:
            out["A"] = np.ascontiguousarray(flat["A"], dtype=np.float32)
        else:  # samples without alpha are opaque: the pixel is covered wherever it has one
            out["A"] = (np.diff(image.offsets) > 0).astype(np.float32).reshape(image.height, image.width)
    else:
        wanted = [c for c in ("R", "G", "B", "A") if c in image.channels]
        if not wanted:  # already flat and not RGBA (a mask, a depth pass): keep its float channels
            wanted = [c for c, t in image.pixel_types.items() if t.name != "UINT"]
        if not wanted:
            raise DeepscopeError(f"{doc.path}: part {index} has no colour, alpha or other float channel")
        out = {c: np.ascontiguousarray(image.channels[c], dtype=np.float32) for c in wanted}
    return p, out
