"""The spec's DAG as Mermaid text, SVG or PNG (``mlpipe graph``).

The layout is a simple layered one (a stage sits one layer below its deepest upstream stage),
which is all a pipeline of a dozen stages needs, and it keeps graphviz out of the dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from steps.spec import PipelineSpec

# fill colour per stage kind: data prep, learning, checks, packaging, release, side effects
COLOURS = {
    "processing": "#dbeafe", "training": "#fde68a", "evaluation": "#e9d5ff", "gate": "#fecaca",
    "model": "#bbf7d0", "register": "#bbf7d0", "approval": "#fed7aa", "endpoint": "#a7f3d0",
    "transform": "#a7f3d0", "lambda": "#e5e7eb",
}
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 180, 46, 40, 44, 20


@dataclass(frozen=True)
class Box:
    name: str
    kind: str
    x: int
    y: int


def layout(spec: PipelineSpec) -> tuple[list[Box], list[tuple[str, str]], int, int]:
    depth: dict[str, int] = {}
    for s in spec.stages:  # topological order: upstream depths are known
        depth[s.name] = 1 + max((depth[u] for u in s.upstream), default=-1)
    layers: dict[int, list[str]] = {}
    for s in spec.stages:
        layers.setdefault(depth[s.name], []).append(s.name)
    widest = max(len(v) for v in layers.values())
    width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X
    boxes = []
    for level, names in sorted(layers.items()):
        row_w = len(names) * BOX_W + (len(names) - 1) * GAP_X
        x0 = (width - row_w) // 2
        for i, name in enumerate(names):
            boxes.append(Box(name, spec.stage(name).kind, x0 + i * (BOX_W + GAP_X), MARGIN + level * (BOX_H + GAP_Y)))
    height = 2 * MARGIN + len(layers) * BOX_H + (len(layers) - 1) * GAP_Y
    edges = [(u, s.name) for s in spec.stages for u in s.upstream]
    return boxes, edges, width, height


def _label(spec: PipelineSpec, name: str) -> str:
    stage = spec.stage(name)
    return f"{name} [{stage.describe()}]" if stage.kind == "gate" else f"{name} ({stage.kind})"


def mermaid(spec: PipelineSpec) -> str:
    shapes = {"gate": ("{", "}"), "approval": ("[/", "/]"), "lambda": ("([", "])")}
    ids = {s.name: s.name.replace("-", "_") for s in spec.stages}
    lines = ["flowchart TD"]
    for s in spec.stages:
        left, right = shapes.get(s.kind, ("[", "]"))
        lines.append(f'    {ids[s.name]}{left}"{_label(spec, s.name)}"{right}')
    for s in spec.stages:
        for u in s.upstream:
            lines.append(f"    {ids[u]} --> {ids[s.name]}")
    for kind, colour in COLOURS.items():
        members = [ids[s.name] for s in spec.stages if s.kind == kind]
        if members:
            lines.append(f"    classDef {kind} fill:{colour},stroke:#334155")
            lines.append(f"    class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


def svg(spec: PipelineSpec) -> str:
    boxes, edges, width, height = layout(spec)
    at = {b.name: b for b in boxes}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(spec.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#334155"/></marker></defs>',
    ]
    for u, v in edges:
        a, b = at[u], at[v]
        out.append(f'<line x1="{a.x + BOX_W // 2}" y1="{a.y + BOX_H}" x2="{b.x + BOX_W // 2}" y2="{b.y}" '
                   'stroke="#334155" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for b in boxes:
        out.append(f'<rect x="{b.x}" y="{b.y}" width="{BOX_W}" height="{BOX_H}" rx="8" '
                   f'fill="{COLOURS[b.kind]}" stroke="#334155"/>')
        stage = spec.stage(b.name)
        sub = stage.describe() if b.kind == "gate" else b.kind
        out.append(f'<text x="{b.x + BOX_W // 2}" y="{b.y + 19}" text-anchor="middle" font-weight="bold">'
                   f"{escape(b.name)}</text>")
        out.append(f'<text x="{b.x + BOX_W // 2}" y="{b.y + 35}" text-anchor="middle" fill="#475569">'
                   f"{escape(sub)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def png(spec: PipelineSpec, path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    boxes, edges, width, height = layout(spec)
    scale = 2
    img = Image.new("RGB", (width * scale, height * scale), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=12 * scale)
    at = {b.name: b for b in boxes}
    for u, v in edges:
        a, b = at[u], at[v]
        x1, y1, x2, y2 = (a.x + BOX_W // 2) * scale, (a.y + BOX_H) * scale, (b.x + BOX_W // 2) * scale, b.y * scale
        draw.line((x1, y1, x2, y2), fill="#334155", width=2 * scale)
        draw.polygon([(x2, y2), (x2 - 5 * scale, y2 - 9 * scale), (x2 + 5 * scale, y2 - 9 * scale)], fill="#334155")
    for b in boxes:
        box = (b.x * scale, b.y * scale, (b.x + BOX_W) * scale, (b.y + BOX_H) * scale)
        draw.rounded_rectangle(box, radius=8 * scale, fill=COLOURS[b.kind], outline="#334155", width=scale)
        stage = spec.stage(b.name)
        sub = stage.describe() if b.kind == "gate" else b.kind
        cx = (b.x + BOX_W // 2) * scale
        draw.text((cx, (b.y + 15) * scale), b.name, fill="black", font=font, anchor="mm")
        draw.text((cx, (b.y + 32) * scale), sub, fill="#475569", font=font, anchor="mm")
    img.save(path, format="PNG", optimize=True)
