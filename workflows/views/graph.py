"""The spec's DAG as Mermaid text, SVG or PNG (``mlpipe graph``), and a run drawn on it.

Only the transitive reduction is drawn: an edge implied by a longer path (``preprocess ->
evaluate`` when ``preprocess -> train -> evaluate`` exists) adds lines, not information. The
layout is layered (Sugiyama style, pure Python, no graphviz needed): a stage sits one layer
below its deepest upstream stage; an edge that spans several layers is routed through a
reserved slot in each layer it crosses, so a line never passes behind a box; a few barycentre
sweeps order each layer to keep crossings down.

With ``states`` (stage -> {"status", "duration", "detail"}), each box is coloured by the stage's
state and shows its duration and, for a gate, the value it compared: a picture of a run.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from steps.spec import PipelineSpec


def escape(text: str) -> str:
    """&, < and > as entities (xml.sax.saxutils.escape's rule, without its import of urllib)."""
    return html.escape(text, quote=False)

# fill colour per stage kind: data prep, learning, checks, packaging, release, side effects
COLOURS = {
    "processing": "#dbeafe", "training": "#fde68a", "evaluation": "#e9d5ff", "gate": "#fecaca",
    "model": "#bbf7d0", "register": "#bbf7d0", "approval": "#fed7aa", "endpoint": "#a7f3d0",
    "transform": "#a7f3d0", "lambda": "#e5e7eb", "tuning": "#fcd34d", "baseline": "#ddd6fe",
}
# fill colour per stage state, for pictures of runs (local statuses and the AWS ones, lowercased)
STATE_COLOURS = {
    "succeeded": "#86efac", "cached": "#bbf7d0", "running": "#93c5fd", "failed": "#fca5a5",
    "timed out": "#fca5a5", "aborted": "#fca5a5", "stopped": "#fcd34d", "interrupted": "#fcd34d",
    "waiting": "#fdba74", "rejected": "#fdba74", "skipped": "#e5e7eb", "pending": "#f8fafc",
    "not started": "#f8fafc", "executing": "#93c5fd",
}
BOX_W, BOX_H, RUN_BOX_H, GAP_X, GAP_Y, MARGIN, SLOT_W = 180, 46, 62, 40, 48, 20, 14


@dataclass
class Box:
    name: str
    kind: str
    x: int
    y: int
    h: int = BOX_H


@dataclass
class Layout:
    boxes: dict[str, Box]
    edges: list[tuple[str, str, list[tuple[float, float]]]]   # (from, to, polyline points)
    width: int
    height: int
    layers: list[list[str]] = field(default_factory=list)     # names; virtual slots start with "~"


def reduced_edges(spec: PipelineSpec) -> list[tuple[str, str]]:
    """The transitive reduction of the stage DAG, in spec order."""
    from steps.pipeline import ancestry

    reach = ancestry(spec.stages)
    edges = []
    for s in spec.stages:
        implied = set().union(*(reach[u] for u in s.upstream)) if s.upstream else set()
        edges += [(u, s.name) for u in s.upstream if u not in implied]
    return edges


def layout(spec: PipelineSpec, box_h: int = BOX_H) -> Layout:
    edges = reduced_edges(spec)
    depth: dict[str, int] = {}
    for s in spec.stages:
        depth[s.name] = 1 + max((depth[u] for u, v in edges if v == s.name), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for s in spec.stages:
        layers[depth[s.name]].append(s.name)
    # long edges: a virtual slot in every layer between the two ends
    chains: list[tuple[str, str, list[str]]] = []
    links: list[tuple[str, str]] = []
    for u, v in edges:
        path = [u]
        for level in range(depth[u] + 1, depth[v]):
            slot = f"~{u}>{v}@{level}"
            layers[level].append(slot)
            path.append(slot)
        path.append(v)
        chains.append((u, v, path))
        links += list(zip(path, path[1:]))
    _order(layers, links)
    width = 2 * MARGIN + max((_row_width(row) for row in layers), default=BOX_W)
    centre: dict[str, float] = {}
    boxes: dict[str, Box] = {}
    for level, row in enumerate(layers):
        x = MARGIN + (width - 2 * MARGIN - _row_width(row)) / 2
        y = MARGIN + level * (box_h + GAP_Y)
        for name in row:
            w = SLOT_W if name.startswith("~") else BOX_W
            centre[name] = x + w / 2
            if not name.startswith("~"):
                boxes[name] = Box(name, spec.stage(name).kind, int(x), int(y), box_h)
            x += w + GAP_X
    height = 2 * MARGIN + len(layers) * box_h + max(len(layers) - 1, 0) * GAP_Y
    drawn = []
    for u, v, path in chains:
        a, b = boxes[u], boxes[v]
        points = [(centre[u], a.y + a.h)]
        for slot in path[1:-1]:
            level = int(slot.rsplit("@", 1)[1])
            top = MARGIN + level * (box_h + GAP_Y)
            points += [(centre[slot], top), (centre[slot], top + box_h)]
        points.append((centre[v], b.y))
        drawn.append((u, v, points))
    return Layout(boxes, drawn, int(width), int(height), layers)


def _row_width(row: list[str]) -> float:
    return sum(SLOT_W if n.startswith("~") else BOX_W for n in row) + max(len(row) - 1, 0) * GAP_X


def _order(layers: list[list[str]], links: list[tuple[str, str]], sweeps: int = 4) -> None:
    """Barycentre heuristic: order each layer by the mean position of its neighbours."""
    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    for a, b in links:
        downs.setdefault(a, []).append(b)
        ups.setdefault(b, []).append(a)
    for sweep in range(sweeps):
        rows = range(1, len(layers)) if sweep % 2 == 0 else range(len(layers) - 2, -1, -1)
        for level in rows:
            ref = layers[level - 1] if sweep % 2 == 0 else layers[level + 1]
            pos = {n: i for i, n in enumerate(ref)}
            near = ups if sweep % 2 == 0 else downs
            current = {n: i for i, n in enumerate(layers[level])}

            def key(n: str) -> tuple[float, int]:
                ns = [pos[m] for m in near.get(n, []) if m in pos]
                return (sum(ns) / len(ns) if ns else current[n], current[n])
            layers[level].sort(key=key)


def _label(spec: PipelineSpec, name: str) -> str:
    stage = spec.stage(name)
    return f"{name} [{stage.describe()}]" if stage.kind == "gate" else f"{name} ({_subtitle(spec, name)})"


def _subtitle(spec: PipelineSpec, name: str) -> str:
    stage = spec.stage(name)
    each = f" · per {spec.fanout.name}" if spec.fanout and name in spec.fanout.stages else ""
    if stage.kind == "gate":
        return stage.describe() + each
    return (f"{stage.kind} + monitoring" if getattr(stage, "monitoring_schedule", None) else stage.kind) + each


def _state_line(state: Mapping[str, Any] | None) -> str:
    if not state:
        return "not started"
    parts = [str(state.get("status") or "").lower()]
    if state.get("duration"):
        parts.append(str(state["duration"]))
    if state.get("detail"):
        parts.append(str(state["detail"]))
    return " · ".join(p for p in parts if p)


def _fill(kind: str, state: Mapping[str, Any] | None, run: bool) -> str:
    if not run:
        return COLOURS[kind]
    return STATE_COLOURS.get(str((state or {}).get("status") or "not started").lower(), "#f8fafc")


def mermaid(spec: PipelineSpec) -> str:
    shapes = {"gate": ("{", "}"), "approval": ("[/", "/]"), "lambda": ("([", "])")}
    ids = {s.name: s.name.replace("-", "_") for s in spec.stages}
    lines = ["flowchart TD"]
    group = set(spec.fanout.stages) if spec.fanout and not spec.fanout.copies else set()
    for s in sorted(spec.stages, key=lambda s: s.name in group):  # a fan-out's group: one subgraph, last
        if s.name in group and not any(line.startswith("    subgraph") for line in lines):
            items = ", ".join(i.value for i in spec.fanout.items) or "items read at run time"
            lines.append(f'    subgraph {spec.fanout.name.replace("-", "_")}["foreach {spec.fanout.name}: {items}"]')
        left, right = shapes.get(s.kind, ("[", "]"))
        lines.append(f'    {ids[s.name]}{left}"{_label(spec, s.name)}"{right}')
    if group:
        lines.append("    end")
    for u, v in reduced_edges(spec):
        lines.append(f"    {ids[u]} --> {ids[v]}")
    for kind, colour in COLOURS.items():
        members = [ids[s.name] for s in spec.stages if s.kind == kind]
        if members:
            lines.append(f"    classDef {kind} fill:{colour},stroke:#334155")
            lines.append(f"    class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


def svg(spec: PipelineSpec, states: Mapping[str, Mapping[str, Any]] | None = None, title: str | None = None) -> str:
    run = states is not None
    lay = layout(spec, RUN_BOX_H if run else BOX_H)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{lay.height}" '
        f'viewBox="0 0 {lay.width} {lay.height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(title or spec.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#334155"/></marker></defs>',
    ]
    for u, v, points in lay.edges:
        d = " ".join(f"{x:g},{y:g}" for x, y in points)
        out.append(f'<polyline class="edge" data-from="{escape(u)}" data-to="{escape(v)}" points="{d}" '
                   'fill="none" stroke="#334155" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for b in lay.boxes.values():
        state = (states or {}).get(b.name)
        status = str((state or {}).get("status") or "not started").lower() if run else ""
        out.append(f'<g class="stage" data-stage="{escape(b.name)}"'
                   + (f' data-status="{escape(status)}"' if run else "") + ">")
        out.append(f'<rect x="{b.x}" y="{b.y}" width="{BOX_W}" height="{b.h}" rx="8" '
                   f'fill="{_fill(b.kind, state, run)}" stroke="#334155"/>')
        out.append(f'<text x="{b.x + BOX_W // 2}" y="{b.y + 19}" text-anchor="middle" font-weight="bold">'
                   f"{escape(b.name)}</text>")
        out.append(f'<text x="{b.x + BOX_W // 2}" y="{b.y + 35}" text-anchor="middle" fill="#475569">'
                   f"{escape(_subtitle(spec, b.name))}</text>")
        if run:
            out.append(f'<text x="{b.x + BOX_W // 2}" y="{b.y + 52}" text-anchor="middle" fill="#0f172a">'
                       f"{escape(_state_line(state))}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def png(spec: PipelineSpec, path: Path, states: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    from PIL import Image, ImageDraw, ImageFont

    run = states is not None
    lay = layout(spec, RUN_BOX_H if run else BOX_H)
    scale = 2
    img = Image.new("RGB", (lay.width * scale, lay.height * scale), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=12 * scale)
    for _, _, points in lay.edges:
        pts = [(x * scale, y * scale) for x, y in points]
        draw.line(pts, fill="#334155", width=2 * scale, joint="curve")
        (x1, y1), (x2, y2) = pts[-2], pts[-1]
        length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1e-9)
        ux, uy = (x2 - x1) / length, (y2 - y1) / length           # along the last segment
        back, side = 9 * scale, 5 * scale
        draw.polygon([(x2, y2), (x2 - back * ux - side * uy, y2 - back * uy + side * ux),
                      (x2 - back * ux + side * uy, y2 - back * uy - side * ux)], fill="#334155")
    for b in lay.boxes.values():
        state = (states or {}).get(b.name)
        box = (b.x * scale, b.y * scale, (b.x + BOX_W) * scale, (b.y + b.h) * scale)
        draw.rounded_rectangle(box, radius=8 * scale, fill=_fill(b.kind, state, run), outline="#334155", width=scale)
        cx = (b.x + BOX_W // 2) * scale
        draw.text((cx, (b.y + 15) * scale), b.name, fill="black", font=font, anchor="mm")
        draw.text((cx, (b.y + 32) * scale), _subtitle(spec, b.name), fill="#475569", font=font, anchor="mm")
        if run:
            draw.text((cx, (b.y + 49) * scale), _state_line(state), fill="#0f172a", font=font, anchor="mm")
    img.save(path, format="PNG", optimize=True)
