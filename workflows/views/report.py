"""A local run as one self-contained HTML page (``runs/<id>/report.html``).

The DAG coloured by each stage's state, the stage timings, the metrics, and an evaluation plot
(predicted against actual for regression, a confusion matrix for classification). Everything is
inline (SVG and CSS, no script, no font or image fetched), so it opens offline.
"""

from __future__ import annotations

import csv
import io
from html import escape
from pathlib import Path
from typing import Any, Mapping

from steps.spec import PipelineSpec
from workflows.local.record import DONE, Status
from workflows.views.graph import STATE_COLOURS, svg

CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#0f172a;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0}
.meta{color:#475569;margin-bottom:12px} .status{padding:2px 8px;border-radius:10px;font-weight:bold}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 10px;text-align:left;border-bottom:1px solid #f1f5f9}
td.num{text-align:right;font-variant-numeric:tabular-nums} .bar{height:10px;background:#93c5fd;border-radius:3px}
.grid{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start} .dag{overflow:auto}
"""


def duration_text(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


def states_of(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A local run record's stages as the graph's states: status, duration, and the gate's value."""
    out = {}
    for name, entry in record.get("stages", {}).items():
        detail = ""
        value = ((entry.get("outputs") or {}).get("value") or {}).get("value")
        if entry.get("kind") == "gate" and isinstance(value, (int, float)):
            detail = f"value {value:.4g}"
        out[name] = {"status": entry.get("status", Status.PENDING), "duration": duration_text(entry.get("duration")),
                     "detail": detail}
    return out


def report_html(spec: PipelineSpec, record: Mapping[str, Any], run_dir: Path) -> str:
    status = str(record.get("status", ""))
    colour = STATE_COLOURS.get(status.lower(), "#e5e7eb")
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{escape(spec.name)} run {escape(str(record.get('run_id', '')))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(spec.name)} <span class=\"status\" style=\"background:{colour}\">{escape(status)}</span></h1>",
        f"<div class=\"meta\">run {escape(str(record.get('run_id', '')))} · started "
        f"{escape(str(record.get('started', '')))} · {escape(duration_text(record.get('duration')))} · "
        f"config hash {escape(str(record.get('config_hash', ''))[:12])}</div>",
        "<div class=\"grid\"><div class=\"dag\">", svg(spec, states_of(record), title=f"{spec.name} run"), "</div><div>",
        "<h2>Stages</h2>", _timings(record),
        "<h2>Metrics</h2>", _metrics(record.get("metrics") or {}),
        "<h2>Evaluation</h2>", _evaluation_plot(spec, record, run_dir),
        "</div></div></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _timings(record: Mapping[str, Any]) -> str:
    stages = record.get("stages", {})
    longest = max([e.get("duration") or 0 for e in stages.values()] + [1e-9])
    rows = ["<table><tr><th>stage</th><th>kind</th><th>status</th><th>duration</th><th></th></tr>"]
    for name in record.get("order", list(stages)):
        e = stages.get(name, {})
        width = int(160 * (e.get("duration") or 0) / longest)
        rows.append(f"<tr><td>{escape(name)}</td><td>{escape(str(e.get('kind', '')))}</td>"
                    f"<td>{escape(str(e.get('status', '')))}</td>"
                    f"<td class=\"num\">{escape(duration_text(e.get('duration')))}</td>"
                    f"<td><div class=\"bar\" style=\"width:{width}px\"></div></td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _metrics(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return "<p>no metrics (the evaluation did not run)</p>"
    rows = "".join(f"<tr><td>{escape(k)}</td><td class=\"num\">{v:.6g}</td></tr>" if isinstance(v, (int, float))
                   else f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in sorted(metrics.items()))
    return f"<table>{rows}</table>"


def _predictions(spec: PipelineSpec, record: Mapping[str, Any], run_dir: Path) -> tuple[list[float], list[float], str]:
    for s in reversed(spec.stages):
        if s.kind == "evaluation" and record.get("stages", {}).get(s.name, {}).get("status") in DONE:
            path = run_dir / "stages" / s.name / "opt/ml/processing/evaluation/predictions.csv"
            if path.is_file():
                rows = list(csv.DictReader(io.StringIO(path.read_text())))
                return ([float(r["actual"]) for r in rows], [float(r["predicted"]) for r in rows],
                        getattr(s, "problem_type", "regression"))
    return [], [], "regression"


def _evaluation_plot(spec: PipelineSpec, record: Mapping[str, Any], run_dir: Path) -> str:
    actual, predicted, problem = _predictions(spec, record, run_dir)
    if not actual:
        return "<p>no predictions to plot (the evaluation did not run)</p>"
    if problem == "classification":
        return _confusion(actual, predicted)
    return _scatter(actual, predicted)


def _scatter(actual: list[float], predicted: list[float], size: int = 360, pad: int = 44) -> str:
    """Predicted against actual, with the y = x line: points on it are perfect predictions."""
    lo, hi = min(actual + predicted), max(actual + predicted)
    if hi == lo:
        hi = lo + 1.0
    span = size - 2 * pad

    def sx(v: float) -> float:
        return pad + (v - lo) / (hi - lo) * span

    def sy(v: float) -> float:
        return size - pad - (v - lo) / (hi - lo) * span
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{size}" height="{size}" '
           f'viewBox="0 0 {size} {size}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
           "<title>predicted against actual</title>",
           f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="#f8fafc" stroke="#94a3b8"/>',
           f'<line x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}" stroke="#64748b" '
           'stroke-dasharray="4 3"/>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<text x="{sx(v):.1f}" y="{size - pad + 14}" text-anchor="middle">{v:.3g}</text>')
        out.append(f'<text x="{pad - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    step = max(1, len(actual) // 2000)  # a few thousand points say all a reader can see
    for a, p in list(zip(actual, predicted))[::step]:
        out.append(f'<circle class="point" cx="{sx(a):.1f}" cy="{sy(p):.1f}" r="2.2" fill="#2563eb" fill-opacity="0.45"/>')
    out.append(f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle">actual</text>')
    out.append(f'<text x="12" y="{size / 2}" text-anchor="middle" transform="rotate(-90 12 {size / 2})">predicted</text>')
    out.append("</svg>")
    return "\n".join(out)


def _confusion(actual: list[float], predicted: list[float]) -> str:
    classes = sorted({int(v) for v in actual} | {int(v) for v in predicted})
    counts = {(a, p): 0 for a in classes for p in classes}
    for a, p in zip(actual, predicted):
        counts[int(a), int(p)] += 1
    top = max(counts.values()) or 1
    head = "".join(f"<th>pred {c}</th>" for c in classes)
    rows = [f"<table class=\"confusion\"><tr><th>actual \\ predicted</th>{head}</tr>"]
    for a in classes:
        cells = "".join(f"<td class=\"num\" style=\"background:rgba(37,99,235,{counts[a, p] / top * 0.8:.2f})\">"
                        f"{counts[a, p]}</td>" for p in classes)
        rows.append(f"<tr><th>class {a}</th>{cells}</tr>")
    rows.append("</table>")
    return "".join(rows)
