"""The report for people (HTML, PDF in Chinese and English), the command line, and a photo as evidence."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from store.investigation import investigate, labels_in_photo
from tests.investigation.conftest import LEAK_COUNTY, LEAKED, Demo


def _cli():  # type: ignore[no-untyped-def]
    from cli.investigate import register
    from cli.main import cli

    if "investigate" not in cli.commands:
        register(cli)
    return cli


def _run(demo: Demo, *args: str) -> object:
    return CliRunner().invoke(_cli(), ["--home", str(demo.home), "investigate", *args],
                              env={"CUSTODY_DATABASE_URL": demo.url, "CUSTODY_HOME": None})


def test_html_shows_the_ranking_the_chart_the_scope_and_every_proof(demo: Demo) -> None:
    from printing.report import render_html

    report = investigate(demo.instance, "YW")
    page = render_html(report, "zh")
    assert "东湖区中招办（360102）" in page and "<svg" in page and "开考" in page
    assert "情况二" in page and "YW-B-360102" in page
    assert page.count('<details id="leaf-') == len(report.cited())
    assert page.count("\nc2sp.org/tlog-proof@v1\nindex ") + page.count(">c2sp.org/tlog-proof@v1\nindex ") \
        == len(report.cited())
    # the ranking's Items column is each unit's count of items (not the repr of a method of the row)
    counts = re.findall(r'<td title="[^"]*">([^<]*)</td>', page)
    assert counts and all(c.isdigit() for c in counts) and "built-in method" not in page
    english = render_html(report, "en")
    assert "Tiered responsibility" in english and "found after the exam: the subject is void" in english


FULL_WIDTH = "（）；：，、。"


def _text_of(page: str) -> str:
    import html
    import re

    page = re.sub(r"<style.*?</style>|<svg.*?</svg>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _outside_chinese_names(text: str) -> str:
    """The text without its Chinese proper names (units and people as the plan names them)."""
    import re

    return re.sub(r"[\u4e00-\u9fff]+", "", text)


def test_the_english_report_has_english_punctuation_and_kind_names(demo: Demo, tmp_path: Path) -> None:
    """English: ASCII brackets and separators, 'paper bundle' not paper_bundle; Chinese keeps its own."""
    from printing.report import render_html, render_pdf

    report = investigate(demo.instance, "YW", leaked_item=LEAKED)
    english = _text_of(render_html(report, "en"))
    assert f"{LEAKED} (paper bundle) → " in english and "(K001-01)" in english
    assert "paper_bundle" not in english
    found = sorted({c for c in _outside_chinese_names(english) if c in FULL_WIDTH})
    assert not found, found
    chinese = _text_of(render_html(report, "zh"))
    assert f"{LEAKED}（试卷袋） → " in chinese and "（K001-01）" in chinese and "；" in chinese
    if shutil.which("pdftotext"):
        render_pdf(report, tmp_path / "report.pdf", "en")
        pdf = subprocess.run(["pdftotext", str(tmp_path / "report.pdf"), "-"], check=True, capture_output=True,
                             text=True).stdout
        assert f"{LEAKED} (paper bundle) → " in pdf and "paper_bundle" not in pdf
        found = sorted({c for c in _outside_chinese_names(pdf) if c in FULL_WIDTH})
        assert not found, found


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pdf_renders_with_the_chinese_font(demo: Demo, tmp_path: Path, lang: str) -> None:
    from printing.report import render_pdf

    if demo.url.startswith("postgresql") and lang == "en":
        pytest.skip("the renderer does not depend on the database")
    report = investigate(demo.instance, "YW", leaked_item=LEAKED)
    out = tmp_path / "report.pdf"
    render_pdf(report, out, lang)
    assert out.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(out), "-"], check=True, capture_output=True,
                              text=True).stdout
        assert ("失泄密调查报告" if lang == "zh" else "Leak investigation report") in text
        assert "360102" in text
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", str(out), str(tmp_path / "page")],
                       check=True)
        assert list(tmp_path.glob("page*.png"))


def test_cli_json_html_and_pdf(demo: Demo, tmp_path: Path) -> None:
    html_file, pdf_file = tmp_path / "r.html", tmp_path / "r.pdf"
    result = _run(demo, "--subject", "YW", "--leak-time", "2017-06-19T23:30", "--json", "--html", str(html_file),
                  "--pdf", str(pdf_file))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert data["format"] == "custody-investigation/v1"
    assert data["ranking"][0]["unit"] == LEAK_COUNTY
    assert data["query"]["leak_time"] == "2017-06-19T15:30:00Z"
    assert data["scope"]["timing"] == "before"
    assert html_file.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert pdf_file.read_bytes().startswith(b"%PDF")
    summary = _run(demo, "--subject", "YW")
    assert summary.exit_code == 0 and LEAK_COUNTY in summary.output  # type: ignore[attr-defined]


def test_cli_errors_name_the_problem(demo: Demo) -> None:
    missing = _run(demo, "--subject", "YW", "--item", "NOPE")
    assert missing.exit_code == 2 and "NOPE" in missing.output  # type: ignore[attr-defined]
    usage = _run(demo)
    assert usage.exit_code == 2 and "--subject" in usage.output  # type: ignore[attr-defined]
    bad_time = _run(demo, "--subject", "YW", "--as-of", "yesterday")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.output  # type: ignore[attr-defined]


def test_a_photo_of_the_bag_opens_its_item(demo: Demo, tmp_path: Path) -> None:
    if demo.url.startswith("postgresql"):
        pytest.skip("decoding does not depend on the database")
    from printing.png import label_png
    from store.queries import printable_labels

    (label,) = printable_labels(demo.instance, "zk2017", item=LEAKED)
    photo = tmp_path / "bag.png"
    label_png(label, dpi=200).save(photo)
    found = labels_in_photo(demo.instance, photo)
    assert [(f["item"], f["verified"]) for f in found] == [(LEAKED, True)]
    result = _run(demo, "--photo", str(photo), "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert data["focus"] == [LEAKED] and data["photo"][0]["verified"]
    assert data["ranking"][0]["unit"] == LEAK_COUNTY
    blank = tmp_path / "blank.png"
    label_png(label, dpi=200).crop((0, 0, 40, 40)).save(blank)
    assert _run(demo, "--photo", str(blank)).exit_code == 2  # type: ignore[attr-defined]
