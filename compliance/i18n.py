"""Translations and locale-aware formatting for user-facing text.

Catalogs live in ``locales/<locale>/LC_MESSAGES/messages.po`` and are maintained with
``pybabel extract/update/compile`` (see ``locales/README.md``).  The ``.mo`` files are not
committed: :func:`compile_catalogs` builds them (as ``pybabel compile`` does) and
:func:`translator` calls it for a catalog whose ``.mo`` is missing or older than its ``.po``.

Messages in code are marked with ``gettext``/``ngettext`` calls on a :class:`Translator` (or
``N_`` for strings translated later), and placeholders use ``%(name)s``.
"""

from __future__ import annotations

import gettext as _gettext
import io
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_datetime_format, get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from mpc.errors import InputError

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
# Catalog directory names.  Portuguese is Brazilian Portuguese (the ANPD's language; our only
# Portuguese catalog): ``pt``, ``pt-BR``, ``pt_BR`` (and ``pt-PT``) all map to ``pt_BR``.
SUPPORTED_LOCALES: tuple[str, ...] = ("en", "es", "fr", "de", "ja", "zh", "pt_BR")
DEFAULT_LOCALE = "en"
_BY_LANGUAGE = {loc.split("_")[0]: loc for loc in SUPPORTED_LOCALES}

_lock = threading.Lock()
_cache: dict[str, _gettext.GNUTranslations] = {}


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


def normalize_locale(locale: str) -> str:
    """Map ``de_DE``, ``zh-Hans-CN``, ``FR``, ``pt-BR`` ... to one of :data:`SUPPORTED_LOCALES`."""
    base = locale.strip().replace("-", "_").split("_")[0].lower()
    if base not in _BY_LANGUAGE:
        raise InputError(
            f"locale {locale!r} is not supported; use one of {', '.join(SUPPORTED_LOCALES)}"
        )
    return _BY_LANGUAGE[base]


def _po_path(locale: str, locales_dir: Path) -> Path:
    return locales_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def _compile_bytes(po_path: Path, locale: str) -> bytes:
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=locale, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def compile_catalogs(locales_dir: Path = LOCALES_DIR, *, force: bool = False) -> list[Path]:
    """Compile every ``messages.po`` under *locales_dir* whose ``.mo`` is stale; return them."""
    written: list[Path] = []
    for locale in SUPPORTED_LOCALES:
        po = _po_path(locale, locales_dir)
        mo = po.with_suffix(".mo")
        if not po.exists():
            raise InputError(f"catalog {po} is missing; run `pybabel init` for {locale!r}")
        if force or not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            mo.write_bytes(_compile_bytes(po, locale))
            written.append(mo)
    return written


def _load(locale: str, locales_dir: Path) -> _gettext.GNUTranslations:
    po = _po_path(locale, locales_dir)
    mo = po.with_suffix(".mo")
    try:
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            mo.write_bytes(_compile_bytes(po, locale))
        data = mo.read_bytes()
    except OSError:  # read-only install: compile in memory
        data = _compile_bytes(po, locale)
    return _gettext.GNUTranslations(io.BytesIO(data))


# Date and time joined as running text says it, where CLDR's "long" pattern only puts a
# space between them (pt: "30 de novembro de 2026 às 23:04", CLDR's atTime form).
DATETIME_JOINS: dict[str, str] = {"pt_BR": "{1} às {0}"}
# Locales whose parentheses are full-width and take no space: 9:00（日本標準時）
FULLWIDTH_LOCALES = frozenset({"ja", "zh"})

_DateTime = datetime  # the method Translator.datetime shadows the type inside the class


@dataclass(frozen=True)
class Translator:
    """Messages and formatting for one locale and one display time zone."""

    locale: str
    tz: ZoneInfo
    _tr: _gettext.GNUTranslations

    def gettext(self, message: str) -> str:
        return self._tr.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._tr.ngettext(singular, plural, n)

    def date(self, when: datetime, fmt: str = "long") -> str:
        return format_date(when.astimezone(self.tz), format=fmt, locale=self.locale)

    def time(self, when: datetime, fmt: str = "short") -> str:
        return format_time(when, format=fmt, tzinfo=self.tz, locale=self.locale)

    def datetime(self, when: datetime) -> str:
        """Long date, short time and the zone's long name, joined the locale's way (CLDR's
        pattern, or :data:`DATETIME_JOINS` where it reads badly in running text); the zone
        in the locale's parentheses (full-width in Japanese and Chinese)."""
        pattern = DATETIME_JOINS.get(self.locale) or str(
            get_datetime_format("long", locale=self.locale)
        ).replace("'", "")
        zone = self.tz_name(when)
        paren = f"（{zone}）" if self.locale in FULLWIDTH_LOCALES else f" ({zone})"
        return pattern.format(self.time(when), self.date(when)) + paren

    def number(self, value: int | float | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def tz_name(self, when: _DateTime) -> str:
        """Localized name of the display time zone at *when* (e.g. ``heure d'été ...``)."""
        return get_timezone_name(when.astimezone(self.tz), width="long", locale=self.locale)

    def join(self, items: list[str]) -> str:
        """A localized list: ``a, b and c`` / ``a, b et c`` / ``a、b和c``."""
        from babel.lists import format_list

        return format_list(items, locale=self.locale) if items else ""

    @property
    def display_name(self) -> str:
        return Locale.parse(self.locale).get_display_name(self.locale) or self.locale


def translator(
    locale: str = DEFAULT_LOCALE, tz: str = "UTC", *, locales_dir: Path = LOCALES_DIR
) -> Translator:
    """A :class:`Translator` for *locale* (normalized) showing times in the IANA zone *tz*."""
    loc = normalize_locale(locale)
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise InputError(
            f"time zone {tz!r} is unknown; use an IANA name like Europe/Paris"
        ) from exc
    key = f"{locales_dir}:{loc}"
    with _lock:
        tr = _cache.get(key)
        if tr is None:
            tr = _cache[key] = _load(loc, locales_dir)
    return Translator(locale=loc, tz=zone, _tr=tr)


def translator_or_fallback(locale: str | None, tz: str | None) -> tuple[Translator, bool]:
    """A translator for a subject's stored ``locale`` and zone; English (``DEFAULT_LOCALE``) when
    none is stored or it is not supported.  Returns it and whether the fallback was used."""
    if locale:
        try:
            return translator(locale, tz or "UTC"), False
        except InputError:
            pass
    return translator(DEFAULT_LOCALE, tz or "UTC"), True
