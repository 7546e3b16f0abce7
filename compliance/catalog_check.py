"""Checks of the gettext catalogs in ``locales/`` (run by the test suite and by hand).

``python -m compliance.catalog_check [LOCALES_DIR]`` prints every problem and exits 1 if any:
a message of ``messages.pot`` missing from a catalog, an untranslated or fuzzy entry, an
obsolete entry left behind, a placeholder present in msgid but not in msgstr (or the reverse),
a plural entry with the wrong number of forms, or a ``Plural-Forms`` header that differs from
CLDR's rule for the language (ja, zh: one form).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from compliance.i18n import DOMAIN, LOCALES_DIR, SUPPORTED_LOCALES

_PLACEHOLDER = re.compile(
    r"%\((\w+)\)[#0 +\-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|(?<!\{)\{(\w*)\}(?!\})"
)


@dataclass(frozen=True)
class Problem:
    locale: str
    msgid: str
    what: str

    def __str__(self) -> str:
        return f"{self.locale}: {self.msgid!r}: {self.what}"


def placeholders(text: str) -> set[str]:
    return {a or b for a, b in _PLACEHOLDER.findall(text)}


def _first(msgid: str | tuple[str, ...] | list[str]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale, domain=DOMAIN)


def _check_message(m: Message, locale: str, nplurals: int) -> list[str]:
    out: list[str] = []
    if m.fuzzy:
        out.append("fuzzy")
    ids = (m.id,) if isinstance(m.id, str) else tuple(m.id)
    strings = (m.string,) if isinstance(m.string, str) else tuple(m.string or ())
    if not m.pluralizable and not isinstance(m.string, str):
        out.append("plural msgstr for a singular msgid")
    if not strings or any(not s for s in strings):
        out.append("untranslated")
        return out
    want = set().union(*(placeholders(i) for i in ids))
    for n, s in enumerate(strings):
        got = placeholders(s)
        if got != want:
            missing, extra = sorted(want - got), sorted(got - want)
            out.append(f"msgstr[{n}] placeholders differ: missing {missing}, unexpected {extra}")
    return out


_ENTRY_ID = re.compile(r'^msgid "(.*)"$', re.M)
_PLURAL_INDEX = re.compile(r"^msgstr\[(\d+)\]", re.M)


def _raw_plural_forms(text: str) -> dict[str, int]:
    """msgid -> number of ``msgstr[N]`` lines, read from the raw file (Babel's reader pads
    missing forms and drops extra ones, so it cannot see either)."""
    counts: dict[str, int] = {}
    for block in re.split(r"\n\s*\n", text):
        if "msgid_plural" in block and (m := _ENTRY_ID.search(block)):
            counts[m.group(1)] = len(_PLURAL_INDEX.findall(block))
    return counts


def check_catalog(po_path: Path, locale: str, template: Catalog) -> list[Problem]:
    cat = _read(po_path, locale)
    problems: list[Problem] = []
    rule = get_plural(locale)
    expected = f"nplurals={rule.num_plurals}; plural={rule.plural_expr};"
    header = dict(cat.mime_headers).get("Plural-Forms", "")
    if header.replace(" ", "") != expected.replace(" ", ""):
        problems.append(Problem(locale, "", f"Plural-Forms {header!r}, expected {expected!r}"))
    ids = {m.id for m in cat if m.id}
    for m in template:
        if m.id and m.id not in ids:
            problems.append(Problem(locale, _first(m.id), "missing; run pybabel update"))
    for msgid in cat.obsolete:
        problems.append(Problem(locale, _first(msgid), "obsolete entry; remove it"))
    for msgid, n in _raw_plural_forms(po_path.read_text(encoding="utf-8")).items():
        if n != rule.num_plurals:
            problems.append(
                Problem(locale, msgid, f"{n} plural form(s), the language has {rule.num_plurals}")
            )
    for m in cat:
        if not m.id:
            continue
        for what in _check_message(m, locale, rule.num_plurals):
            problems.append(Problem(locale, _first(m.id), what))
    return problems


def check_all(locales_dir: Path = LOCALES_DIR) -> list[Problem]:
    template = _read(locales_dir / f"{DOMAIN}.pot")
    problems: list[Problem] = []
    for locale in SUPPORTED_LOCALES:
        po = locales_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not po.exists():
            problems.append(Problem(locale, "", f"{po} is missing; run pybabel init"))
            continue
        problems.extend(check_catalog(po, locale, template))
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    problems = check_all(Path(args[0]) if args else LOCALES_DIR)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
