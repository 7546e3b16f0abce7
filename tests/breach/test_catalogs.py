"""The gettext catalogs are complete, not fuzzy, placeholder-consistent, with CLDR plurals."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compliance.catalog_check import check_all, placeholders
from compliance.i18n import LOCALES_DIR, SUPPORTED_LOCALES, compile_catalogs, translator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    dst = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, dst, ignore=shutil.ignore_patterns("*.mo"))
    return dst


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_real_catalogs_pass():
    assert [str(p) for p in check_all()] == []


def test_pot_is_up_to_date_with_the_code(tmp_path: Path):
    out = tmp_path / "fresh.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "locales/babel.cfg",
            "-o",
            str(out),
            "--no-location",
            "--sort-output",
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    ids = lambda p: set(re.findall(r'^msgid "(.+)"$', p.read_text("utf-8"), re.M))  # noqa: E731
    assert ids(out) == ids(LOCALES_DIR / "messages.pot"), "run pybabel extract (locales/README.md)"


def test_planted_fuzzy_entry_fails(locales: Path):
    po = locales / "de" / "LC_MESSAGES" / "messages.po"
    _edit(po, '\nmsgid "Hello,"', '\n#, fuzzy\nmsgid "Hello,"')
    assert [(p.locale, p.msgid, p.what) for p in check_all(locales)] == [("de", "Hello,", "fuzzy")]


def test_placeholder_mismatch_fails_both_ways(locales: Path):
    fr = locales / "fr" / "LC_MESSAGES" / "messages.po"
    _edit(fr, 'msgstr "Référence\u00a0: %(reference)s"', 'msgstr "Référence"')
    es = locales / "es" / "LC_MESSAGES" / "messages.po"
    _edit(es, 'msgstr "Hola:"', 'msgstr "Hola %(name)s:"')
    whats = sorted(p.what for p in check_all(locales))
    assert whats == [
        "msgstr[0] placeholders differ: missing ['reference'], unexpected []",
        "msgstr[0] placeholders differ: missing [], unexpected ['name']",
    ]


def test_invalid_plural_forms_fail(locales: Path):
    ja = locales / "ja" / "LC_MESSAGES" / "messages.po"
    _edit(ja, "nplurals=1; plural=0;", "nplurals=2; plural=(n != 1);")
    fr = locales / "fr" / "LC_MESSAGES" / "messages.po"
    _edit(fr, 'msgstr[1] "Environ %(num)s personnes concernées."\n', "")
    zh = locales / "zh" / "LC_MESSAGES" / "messages.po"
    _edit(
        zh,
        'msgstr[0] "总计约有%(num)s人受到影响。"\n',
        'msgstr[0] "总计约有%(num)s人受到影响。"\nmsgstr[1] "总计约有%(num)s人受到影响。"\n',
    )
    problems = {(p.locale, p.what) for p in check_all(locales)}
    assert (
        "ja",
        "Plural-Forms 'nplurals=2; plural=(n != 1);', expected 'nplurals=1; plural=0;'",
    ) in problems
    assert ("fr", "1 plural form(s), the language has 2") in problems
    assert ("zh", "2 plural form(s), the language has 1") in problems


def test_missing_and_untranslated_fail(locales: Path):
    zh = locales / "zh" / "LC_MESSAGES" / "messages.po"
    _edit(zh, 'msgstr "您好："', 'msgstr ""')
    text = zh.read_text("utf-8")
    zh.write_text(re.sub(r'\nmsgid "low"\nmsgstr "低"\n', "\n", text), "utf-8")
    whats = {(p.msgid, p.what) for p in check_all(locales)}
    assert whats == {("Hello,", "untranslated"), ("low", "missing; run pybabel update")}


def test_placeholder_parser():
    assert placeholders("%(a)s and %(b)d, {c} but not {{d}}") == {"a", "b", "c"}


def test_compiled_catalogs_translate_with_one_form_in_ja_and_zh(locales: Path):
    assert len(compile_catalogs(locales, force=True)) == len(SUPPORTED_LOCALES)
    assert all(
        (locales / loc / "LC_MESSAGES" / "messages.mo").exists() for loc in SUPPORTED_LOCALES
    )
    for loc, one, many in [
        ("fr", 0, "Violation X\u00a0: 0 échéance ouverte."),
        ("de", 2, "Verletzung X: 2 offene Fristen."),
        ("ja", 5, "漏えい等 X：未対応の期限 5 件。"),
    ]:
        t = translator(loc, locales_dir=locales)
        s = t.ngettext(
            "Breach %(id)s: %(num)s open deadline.", "Breach %(id)s: %(num)s open deadlines.", one
        ) % {"id": "X", "num": one}
        assert s == many
