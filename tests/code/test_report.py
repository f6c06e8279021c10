"""The measured documents' sections: saved one at a time, found again in an assembled document."""

from __future__ import annotations

from benchmarks import report


def test_a_saved_section_is_found_again_by_name_in_a_document(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "REPORTS", tmp_path)
    first = report.save_section("benchmarks", "serving", "## Serving\n\n| a |\n|---|\n| 1 |\n")
    second = report.save_section("benchmarks", "freshness", "## Freshness\n\n90 s\n")
    document = tmp_path / "BENCHMARKS.md"
    document.write_text("# Benchmarks\n\nMachine: ...\n\n" + first.read_text() + "\n" + second.read_text())
    sections = report.sections_in(document)
    assert list(sections) == ["serving", "freshness"]
    assert sections["serving"].startswith("<!-- section: serving -->\n## Serving")
    assert "| 1 |" in sections["serving"] and "90 s" not in sections["serving"]
    assert "measured" in sections["freshness"]
    assert report.sections_in(tmp_path / "missing.md") == {}
