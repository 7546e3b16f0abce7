"""Notices in all seven locales with Babel-formatted dates, times and numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from compliance.breach_deadlines import RiskLevel
from compliance.breach_notices import (
    NoticeContent,
    cli_summary,
    render_authority_notice,
    render_california_notice,
    render_subject_notice,
)
from compliance.i18n import SUPPORTED_LOCALES, translator
from mpc.errors import InputError

AWARE = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)  # 10:00 in Paris (CEST)
ISSUED = datetime(2026, 10, 26, 7, 30, tzinfo=UTC)
CONTENT = NoticeContent(
    reference="BR-2026-0001",
    nature="Unauthorised access to a support database",
    aware_at=AWARE,
    affected_subjects=1234,
    affected_records=56789,
    categories=("contact", "credentials"),
    measures=("access_revoked", "credentials_reset"),
    risk=RiskLevel.HIGH,
    contact="dpo@example.org",
)
ZONES = {
    "en": "America/New_York",
    "es": "Europe/Madrid",
    "fr": "Europe/Paris",
    "de": "Europe/Berlin",
    "ja": "Asia/Tokyo",
    "zh": "Asia/Shanghai",
    "pt_BR": "America/Sao_Paulo",
}

EXPECTED = {  # one known fragment per locale: date, time, number as Babel formats them there
    "en": ["On October 23, 2026 at 4:00\u202fAM we became aware", "about 1,234 people"],
    "es": ["El 23 de octubre de 2026 a las 10:00 tuvimos", "aproximadamente 1.234 personas"],
    "fr": ["Le 23 octobre 2026 à 10:00, nous avons", "environ 1\u202f234 personnes"],
    "de": ["Am 23. Oktober 2026 um 10:00 haben wir", "etwa 1.234 Personen"],
    "ja": ["2026年10月23日 17:00に、お客様の個人データ", "約1,234人"],
    "zh": ["我们于2026年10月23日 16:00获悉", "约有1,234人"],
    "pt_BR": ["Em 23 de outubro de 2026, às 05:00, tomamos", "cerca de 1.234 pessoas"],
}


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_subject_notice_in_each_locale(locale):
    n = render_subject_notice(CONTENT, locale=locale, tz=ZONES[locale], issued_at=ISSUED)
    for fragment in EXPECTED[locale]:
        assert fragment in n.body
    assert n.locale == locale
    if locale != "en":  # really translated, not an English copy
        assert "personal data" not in n.body and "Hello" not in n.body
    assert CONTENT.nature in n.body  # GDPR Art. 34(2): the nature of the breach


def test_known_formatted_strings():
    assert translator("de", "Europe/Berlin").date(AWARE) == "23. Oktober 2026"
    assert translator("ja", "Asia/Tokyo").date(datetime(2026, 12, 31, 16, tzinfo=UTC)) == (
        "2027年1月1日"
    )
    assert translator("zh", "Asia/Shanghai").date(AWARE) == "2026年10月23日"
    assert translator("fr").number(1234567.5) == "1\u202f234\u202f567,5"
    assert translator("de").number(1234567.5) == "1.234.567,5"


def test_authority_notice_has_article_33_3_contents_and_dst_aware_deadline():
    late = NoticeContent(
        **{
            **CONTENT.__dict__,
            "late_reasons": "forensic analysis",
            "due_at": datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
            "phase": 2,
            "occurred_at": datetime(2026, 10, 22, 23, 0, tzinfo=UTC),
        }
    )
    n = render_authority_notice(late, locale="fr", tz="Europe/Paris")
    body = n.body
    for fragment in [
        "Nature de la violation\u00a0: Unauthorised access",  # (a) nature
        "Environ 1\u202f234 personnes concernées.",  # (a) approximate subjects
        "Environ 56\u202f789 enregistrements",  # (a) approximate records
        "coordonnées et identifiants de connexion",  # (a) categories
        "Point de contact pour obtenir davantage d'informations\u00a0: dpo@example.org",  # (b)
        "Conséquences probables\u00a0: Les personnes concernées pourraient subir",  # (c)
        "- L'accès non autorisé a été bloqué.\n- Les mots de passe concernés ont été",  # (d)
        "le 23 octobre 2026 à 10:00 (heure d’été d’Europe centrale)",
        # the deadline after the clocks went back: 09:00 winter time, not 10:00
        "l'échéance du 26 octobre 2026, 09:00 (heure normale d’Europe centrale)",
        "Motifs du retard\u00a0: forensic analysis",
        "mise à jour n°\u00a02",
        "La violation s'est produite le 23 octobre 2026.",
    ]:
        assert fragment in body, fragment
    de = render_authority_notice(CONTENT, locale="de", tz="Europe/Berlin").body
    assert "Ungefähr 1.234 betroffene Personen." in de and "Aktualisierung" not in de


def test_plural_forms_and_cli_summary():
    one = NoticeContent(**{**CONTENT.__dict__, "affected_subjects": 1})
    zero = NoticeContent(**{**CONTENT.__dict__, "affected_subjects": 0})
    assert (
        "Environ 0 personne concernée." in render_authority_notice(zero, locale="fr", tz="UTC").body
    )  # French: 0 takes the singular
    assert (
        "Approximately 0 data subjects are concerned."
        in render_authority_notice(zero, locale="en", tz="UTC").body
    )
    assert (
        "Ungefähr 1 betroffene Person." in render_authority_notice(one, locale="de", tz="UTC").body
    )
    assert cli_summary(reference="BR-1", open_deadlines=1, next_due=None, locale="es") == (
        "Violación BR-1: 1 plazo pendiente."
    )
    assert cli_summary(reference="BR-1", open_deadlines=3, next_due=None, locale="ja") == (
        "漏えい等 BR-1：未対応の期限 3 件。"
    )


def test_bad_inputs_say_what_to_do():
    with pytest.raises(InputError, match="use one of en, es, fr, de, ja, zh, pt_BR"):
        translator("xx")
    for code in ("pt-BR", "pt_BR", "pt", "PT-br"):  # one Portuguese catalog: Brazilian
        assert translator(code).locale == "pt_BR"
    with pytest.raises(InputError, match="IANA"):
        translator("en", "Mars/Olympus")
    with pytest.raises(InputError, match="categories:"):
        NoticeContent(**{**CONTENT.__dict__, "categories": ("shoe_size",)})
    assert translator("zh-Hans-CN").locale == "zh" and translator("de_AT").locale == "de"


@pytest.mark.parametrize(
    "locale, measures, categories",
    [
        ("ja", "- 不正アクセスを遮断しました。\n- 対象のパスワードをリセットしました。\n", "連絡先情報、ログイン認証情報"),
        ("zh", "- 已阻止未经授权的访问。\n- 已重置受影响的密码。\n", "联系方式和登录凭据"),
        ("en", "- The unauthorised access was blocked.\n- The affected passwords were reset.\n",
         "contact details and login credentials"),
    ],
)
def test_measures_are_sentences_and_categories_a_list_in_ja_and_zh(locale, measures, categories):
    # issue 14: clauses joined as a noun list read 「遮断しました、…」 and 「已阻止…和已重置…」
    for n in (
        render_subject_notice(CONTENT, locale=locale, tz="UTC", issued_at=ISSUED),
        render_authority_notice(CONTENT, locale=locale, tz="UTC"),
    ):
        assert measures in n.body and categories in n.body
        assert "しました、" not in n.body and "和已" not in n.body and "。和" not in n.body


def test_california_notice_has_the_1798_82_d_title_and_headings_in_order():
    n = render_california_notice(CONTENT, locale="en", tz="America/Los_Angeles", issued_at=ISSUED)
    lines = n.body.splitlines()
    assert lines[0] == "Notice of Data Breach"
    headings = [
        "What Happened",
        "What Information Was Involved",
        "What We Are Doing",
        "What You Can Do",
        "For More Information",
    ]
    assert [line for line in lines if line in headings] == headings
    assert CONTENT.nature in n.body and "The date of the breach is not yet known." in n.body
    assert "contact details and login credentials" in n.body and "dpo@example.org" in n.body
    assert "Notice issued on October 26, 2026" in n.body  # the date of the notice


def test_appi_notice_carries_cause_and_prevention_and_final_title():
    c = NoticeContent(
        **{**CONTENT.__dict__, "cause": "phishing", "prevention": "MFA", "final": True,
           "basis": "APPI Rules Art. 8(2)"}
    )
    body = render_authority_notice(c, locale="ja", tz="Asia/Tokyo").body
    assert "個人情報保護法施行規則第8条第2項に基づく確報" in body  # cited the Japanese way
    assert "漏えい等の原因：phishing" in body and "再発防止策：MFA" in body
