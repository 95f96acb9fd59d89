"""report.html of a local run: the DAG with states, the timings, the metrics and the evaluation
plot, checked in a real headless Chromium (no console errors, no network requests)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_cli

from steps.pipeline import load_spec
from workflows.views.report import report_html, states_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> Path:
    """A real local run of the embedded default (bundled data, nothing downloaded)."""
    runs = tmp_path_factory.mktemp("runs")
    proc = run_cli("run", "--runs-dir", str(runs), "--output", "json", cwd=runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = [p for p in runs.iterdir() if (p / "run.json").is_file()]
    return run_dir


def _report(run_dir: Path) -> str:
    path = run_dir / "report.html"
    if path.is_file():
        return path.read_text()
    record = json.loads((run_dir / "run.json").read_text())
    return report_html(load_spec(EXAMPLES / "quickstart.yaml"), record, run_dir)


def test_report_holds_the_dag_the_timings_the_metrics_and_the_plot(quickstart_run):
    html = _report(quickstart_run)
    record = json.loads((quickstart_run / "run.json").read_text())
    assert html.count('class="stage"') == len(record["stages"])
    assert 'data-stage="evaluate-gate" data-status="succeeded"' in html
    for name in record["stages"]:
        assert f"<td>{name}</td>" in html
    assert f"<td>rmse</td><td class=\"num\">{record['metrics']['rmse']:.6g}</td>" in html
    assert html.count('class="point"') == record["metrics"]["n"]
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html


def test_states_of_a_record_name_status_duration_and_gate_value():
    record = {"stages": {"train": {"kind": "training", "status": "Succeeded", "duration": 75.2},
                         "gate": {"kind": "gate", "status": "Failed", "duration": 0.1,
                                  "outputs": {"value": {"value": 7.123}}}}}
    assert states_of(record) == {
        "train": {"status": "Succeeded", "duration": "1m15s", "detail": ""},
        "gate": {"status": "Failed", "duration": "0.1s", "detail": "value 7.123"}}


def test_classification_report_shows_a_confusion_matrix(tmp_path):
    from workflows.views import report

    html = report._confusion([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    assert "<th>class 2</th>" in html and html.count("<td") == 9
    assert ">2</td>" in html  # class 1 predicted as 1 twice


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium_offline(quickstart_run, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    page_file = tmp_path / "report.html"
    page_file.write_text(_report(quickstart_run))
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            requests, problems = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(page_file.as_uri())
            page.screenshot(path=str(shot), full_page=True)
            stages = page.locator("svg g.stage").count()
            points = page.locator("svg.plot circle.point").count()
            box = page.locator("svg g.stage").first.bounding_box()
        finally:
            browser.close()
    assert requests == [page_file.as_uri()], requests
    assert problems == []
    assert stages == 10 and points > 0 and box["width"] > 100
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50                         # not a blank page
    assert any(rgb == (0x86, 0xef, 0xac) for _, rgb in colours)  # succeeded stages are drawn green


def test_a_run_writes_its_report_and_runs_show_draws_it(quickstart_run, tmp_path):
    import xml.etree.ElementTree as ET

    assert (quickstart_run / "report.html").is_file()        # written by the run itself
    runs_dir, run_id = str(quickstart_run.parent), quickstart_run.name
    proc = run_cli("runs", "show", run_id, "--format", "svg", "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(proc.stdout)
    statuses = {g.get("data-stage"): g.get("data-status") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert len(statuses) == 10 and set(statuses.values()) == {"succeeded"}
    png = tmp_path / "run.png"
    assert run_cli("runs", "show", run_id, "--format", "png", "--out", str(png), "--runs-dir", runs_dir).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = tmp_path / "run.html"
    assert run_cli("runs", "show", run_id, "--out", str(html), "--runs-dir", runs_dir).returncode == 0
    assert html.read_text() == (quickstart_run / "report.html").read_text()
    missing = run_cli("runs", "show", "--runs-dir", runs_dir)
    assert missing.returncode == 2 and "needs a RUN" in missing.stderr
