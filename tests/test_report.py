"""``segnas report``: one self-contained HTML page of a run, checked in headless Chromium."""

import base64
import io
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from segnas.outputs import MARK
from test_cli import assert_one_line_error, run_cli

IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')
CHROMIUM_MISSING = "headless Chromium not installed: apt-get install chromium"

# Put first in the page's head (before its Content-Security-Policy, which forbids scripts): records script
# errors, failed loads, policy violations and console.error calls, then on load every image's state, into the DOM.
CHECKER = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window && t.tagName ? 'failed to load ' + t.tagName : 'script: ' + e.message);
}, true);
document.addEventListener('securitypolicyviolation', function (e) {
  window.__errors.push('blocked by the policy: ' + e.blockedURI + ' (' + e.violatedDirective + ')');
});
var consoleError = console.error;
console.error = function () { window.__errors.push('console: ' + Array.prototype.join.call(arguments, ' ')); };
window.addEventListener('load', function () {
  var broken = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (!(im.complete && im.naturalWidth > 0)) broken.push(i);
  }
  var out = document.createElement('pre');
  out.id = 'segnas-check';
  out.textContent = JSON.stringify({images: document.images.length, broken: broken, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder of two real runs at the tiny preset: a random FasterSeg search and the retrain of its result."""
    from segnas.config import make_config
    from segnas.engine import retrain
    from segnas.genotype import load
    from segnas.methods import get_method

    root = tmp_path_factory.mktemp("report") / "runs"
    method = get_method("fasterseg")
    method.search(method.config("tiny", strategy="random"), root / "search", progress=False)
    retrain(load(root / "search" / "genotype.json"), make_config("tiny"), root / "retrain", progress=False)
    return root


@pytest.fixture(scope="module")
def report(runs):
    """The report of both runs, timed on eager PyTorch: (path, text)."""
    from segnas.report.html import write_report

    path = write_report(runs, backends=("eager",))
    return path, path.read_text()


def chromium_check(html_path, tmp_path):
    """Open a copy of the page with the checker in headless Chromium: (what the checker found, console lines)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip(CHROMIUM_MISSING)
    text = html_path.read_text()
    head = '<meta charset="utf-8">'
    assert head in text
    checked = tmp_path / f"checked-{html_path.name}"
    checked.write_text(text.replace(head, head + CHECKER, 1))
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
                           "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="segnas-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"Chromium did not render the page (exit {proc.returncode}): {proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")), console


def test_report_of_a_search_and_a_retrain_shows_every_section(report, runs, capsys):
    path, text = report
    assert path == runs / "report.html"
    assert f'<meta name="{MARK}" content="report">' in text
    for heading in ("overview", "architecture", "search curves", "trials", "retrain curves", "per-class IoU",
                    "predictions", "cost", "configuration", "config.yaml", "env.json"):
        assert f">{heading}<" in text or f"<summary>{heading}" in text, heading
    assert 'id="run-search"' in text and 'id="run-retrain"' in text
    for name in ("sky", "disc", "pole"):  # the synthetic dataset's classes, in the IoU table
        assert f"<td>{name}</td>" in text
    assert text.count('class="pred"') == 4  # --images default: image | truth | prediction panels
    # the retrain's network is the search's result: one archid, the same parameter count, trained vs seeded
    cost = text[text.index(">cost<"):]
    rows = re.findall(r"<tr><td>(?:<a [^>]*>)?(search|retrain)(?:</a>)?</td><td>[^<]*</td><td><code>(\w+)</code>"
                      r"</td><td>64x64</td><td>(trained|seeded)</td><td class=\"num\">([^<]+)</td>"
                      r"<td class=\"num\">([^<]+)</td><td class=\"num\">([0-9.]+)</td>", cost)
    kinds = {r[0]: r for r in rows}
    assert set(kinds) == {"search", "retrain"}, rows
    assert kinds["search"][2] == "seeded" and kinds["retrain"][2] == "trained"
    assert kinds["search"][1] == kinds["retrain"][1] and kinds["search"][3] == kinds["retrain"][3]
    assert all(float(r[5]) > 0 for r in rows)  # eager latency in ms


def test_report_is_self_contained(report):
    _, text = report
    sources = IMG_SRC.findall(text)
    assert len(sources) >= 8  # drawings, curves and predictions
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.verify()
    assert "http://" not in text and "https://" not in text and "url(" not in text
    assert "<script" not in text and "<link" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_report_renders_in_chromium_with_every_image_loaded(report, tmp_path):
    path, text = report
    found, console = chromium_check(path, tmp_path)
    assert found["errors"] == [] and console == []
    assert found["images"] == len(IMG_SRC.findall(text)) and found["broken"] == []


def test_the_chromium_check_fails_a_broken_image_a_throwing_script_and_a_fetch(report, tmp_path):
    """Each fault leaves its own trace (one page holds all three: one browser start)."""
    path, text = report
    src = IMG_SRC.findall(text)[3]
    faulty = text.replace(src, src[:60] + "AAAA" + src[-40:], 1)  # a corrupted PNG
    faulty = faulty.replace('<meta charset="utf-8">', '<meta charset="utf-8"><script>null.x;</script>', 1)
    faulty = faulty.replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>', 1)  # the policy blocks it
    page = tmp_path / "faulty.html"
    page.write_text(faulty)
    found, console = chromium_check(page, tmp_path)
    assert found["broken"] == [3, found["images"] - 1]
    assert any(e.startswith("script: ") and "null" in e for e in found["errors"])
    assert any(e.startswith("blocked by the policy: http://127.0.0.1:9/x.png") for e in found["errors"])
    assert any("Uncaught TypeError" in line for line in console)


def test_report_replaces_its_own_file_and_refuses_a_foreign_one(runs, capsys, tmp_path):
    from segnas.errors import ConfigError
    from segnas.report.html import claim_report

    out = tmp_path / "one.html"
    args = ("report", str(runs / "retrain"), "--out", str(out), "--no-latency", "--images", "1", "--quiet")
    code, stdout, err = run_cli(capsys, *args)
    assert code == 0, err
    assert stdout.strip() == f"report -> {out}" and out.read_text().count('class="pred"') == 1
    assert claim_report(out) == out  # its own earlier report may be replaced
    foreign = tmp_path / "mine.html"
    foreign.write_text("<html>my notes</html>")
    with pytest.raises(ConfigError):
        claim_report(foreign)
    code, _, err = run_cli(capsys, *args[:3], str(foreign), *args[4:])
    assert_one_line_error(code, err, foreign, "--force")
    assert foreign.read_text() == "<html>my notes</html>"
    code, _, err = run_cli(capsys, *args[:3], str(foreign), *args[4:], "--force")
    assert code == 0, err
    assert "segnas report: retrain" in foreign.read_text()


def test_a_folder_that_is_not_a_run_is_one_line_and_nothing_is_written(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    code, out, err = run_cli(capsys, "report", str(tmp_path), "--no-latency")
    assert_one_line_error(code, err, tmp_path, "not a segnas run folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"] and out == ""
    code, _, err = run_cli(capsys, "report", str(tmp_path / "missing"))
    assert_one_line_error(code, err, "missing", "no such folder")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("option, value, needle", [("--images", "-1", "--images"), ("--images", "1000", "--images"),
                                                  ("--backends", "eager,tensorrt", "tensorrt")])
def test_bad_options_are_one_line(runs, capsys, tmp_path, option, value, needle):
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", str(runs / "search"), "--out", str(out), option, value)
    assert_one_line_error(code, err, needle)
    assert not out.exists()


def test_an_unfinished_run_reports_what_it_logged(runs, capsys, tmp_path):
    """A run without result.json and with a half-written log line is reported, the missing part said so."""
    run = tmp_path / "unfinished"
    shutil.copytree(runs / "retrain", run, ignore=shutil.ignore_patterns("report.html"))
    (run / "result.json").unlink()
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 99, "loss": 0.')
    code, _, err = run_cli(capsys, "report", str(run), "--no-latency", "--images", "0", "--quiet")
    assert code == 0, err
    text = (run / "report.html").read_text()
    assert "no result.json: the run has not finished" in text
    assert ">retrain curves<" in text and ">predictions<" not in text


def test_epoch_panels_follow_what_each_method_logs():
    from segnas.report.curves import epoch_panels, search_epoch_chart

    signal = {"median_snr": 0.5, "rows_resolved": 0.25}
    fasterseg = [{"step": 4 * e, "epoch": e, "phase": "search", "latency_lambda": 0.01, "arch_signal": signal,
                  "architectures": {"student": {"archid": "a", "miou": 0.3 + e / 100, "latency_ms": 5.0 + e},
                                    "teacher": {"archid": "b", "miou": 0.4, "latency_ms": 7.0}}}
                 for e in range(3)] + [{"step": 1, "loss_student_max": 1.0}]
    panels = {title: lines for title, lines, _ in epoch_panels(fasterseg)}
    assert set(panels) == {"supernet mIoU on trainB (%)", "estimated latency (ms, from the latency table)",
                           "architecture-gradient signal: median SNR of a row",
                           "share of architecture rows the budget decides", "latency weight lambda"}
    assert panels["supernet mIoU on trainB (%)"]["student"] == ([1.0, 2.0, 3.0], [30.0, 31.0, 32.0])
    assert panels["estimated latency (ms, from the latency table)"]["teacher"][1] == [7.0, 7.0, 7.0]
    dcnas = [{"step": 8, "epoch": 0, "architectures": {"genotype": {"miou": 0.1, "reg_alpha": 2.0, "nodes": 7}}}]
    assert {t for t, _, _ in epoch_panels(dcnas)} == {"supernet mIoU on trainB (%)",
                                                       "nodes of the decoded architecture",
                                                       "L_alpha: entropy of the operator weights"}
    assert epoch_panels([{"step": 1, "loss": 1.0}]) == [] and search_epoch_chart([]) is None
    with Image.open(io.BytesIO(search_epoch_chart(fasterseg))) as im:
        assert im.format == "PNG" and im.text.get(MARK) == "report"


def test_nekrasov_drawing(tmp_path):
    from segnas import zoo
    from segnas.outputs import mark_of
    from segnas.report.draw import draw_nekrasov

    path = draw_nekrasov(zoo.get("nekrasov-arch0"), tmp_path / "arch0.png")
    assert mark_of(path) == "draw"
    with Image.open(path) as im:
        assert im.width > 1000 and im.height > 300


@pytest.mark.slow
@pytest.mark.parametrize("method, strategy", [("autodeeplab", None), ("dcnas", None), ("dots", None),
                                              ("fasterseg", None), ("nekrasov", "ppo"), ("nekrasov", "random")])
def test_report_of_a_tiny_search_of_every_method(capsys, tmp_path, method, strategy):
    from segnas.methods import get_method

    m = get_method(method)
    m.search(m.config("tiny", strategy=strategy), tmp_path / "run", progress=False)
    code, _, err = run_cli(capsys, "report", str(tmp_path / "run"), "--no-latency", "--quiet")
    assert code == 0, err
    text = (tmp_path / "run" / "report.html").read_text()
    assert 'alt="drawing of genotype' in text or 'alt="drawing of student' in text
    assert ('alt="search curves per epoch"' in text) == (strategy is None)
    assert ('alt="score per trial"' in text) == (strategy is not None)
    found, console = chromium_check(tmp_path / "run" / "report.html", tmp_path)
    assert found["errors"] == [] and found["broken"] == [] and console == []


@pytest.mark.slow
def test_the_demo_ends_with_its_report(capsys, tmp_path):
    code, out, err = run_cli(capsys, "demo", "--quick", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith(f"report: {tmp_path / 'demo' / 'report.html'}")
    text = (tmp_path / "demo" / "report.html").read_text()
    for run in ("search", "student", "random1", "hand_designed", "zoo_fasterseg"):
        assert f'id="run-{run}"' in text
