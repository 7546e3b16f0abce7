"""Generate data/sample_batch.csv: 240 varied, fictitious customer-service records.

Deterministic (fixed seed): names, requests, languages (en, es, fr, de, pt, it, ja, zh),
lengths from a few words to a long paragraph, the three regions, timestamps with and without
offsets, and a few deliberately bad rows (empty text, unknown region, duplicate record id,
missing subject) that the flow must quarantine with reasons.  Every person is invented.

    python data/make_sample.py            # rewrites data/sample_batch.csv
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20261127
N = 240

NAMES = {
    "americas": ["Ana Lima", "Tom Baker", "María García", "Lucas Souza", "Emily Chen", "Diego Torres",
                 "Grace Miller", "Camila Rojas", "Noah Brooks", "Valentina Cruz"],
    "europe": ["Jonas Weber", "Claire Dubois", "Sofia Rossi", "Lars Nilsson", "Marta Kowalska",
               "Pierre Martin", "Giulia Bianchi", "Hannah Schmidt", "Javier Ruiz", "Eva Novak"],
    "apac": ["Haruto Sato", "Li Wei", "Priya Nair", "Min-jun Kim", "Aiko Tanaka", "Chen Jing",
             "Arjun Mehta", "Siti Rahman", "Wang Fang", "Yuki Yamamoto"],
}  # fmt: skip

EN = ["{n} asked to move the dentist appointment to Thursday morning.",
      "{n} reports that the mobile app logs out every few minutes.",
      "{n} would like a copy of every invoice issued in 2025.",
      "{n} says the parcel arrived damaged and wants a replacement.",
      "{n} cannot reset the password because the verification email never arrives.",
      "{n} disputes a duplicate charge on the March credit card statement.",
      "{n} asks whether the clinic accepts the new insurance plan.",
      "{n} wants to change the direct debit date to the fifteenth of each month.",
      "{n} requests that all marketing emails stop immediately.",
      "{n} asks for the lab results from last week's blood test.",
      "{n} complains that the heating in the rented flat has not worked since Monday, that two "
      "engineers have already visited without fixing it, and that the landlord does not answer "
      "calls; {n} asks for a rent reduction and a firm repair date before the weekend.",
      "{n} is moving abroad next month and wants to know how to close the savings account, "
      "transfer the balance to a foreign bank, and receive a final tax statement by post.",
      "Payroll question from {n}: overtime hours for October are missing from the payslip."]  # fmt: skip
OTHER = {
    "es": ["{n} quiere cancelar su suscripción al gimnasio.",
           "{n} pregunta por el estado de su reembolso del seguro médico.",
           "{n} solicita una copia de su historial clínico completo."],
    "fr": ["{n} signale que son colis est arrivé endommagé.",
           "{n} demande le report de son rendez-vous chez le cardiologue.",
           "{n} conteste les frais bancaires prélevés en septembre."],
    "de": ["{n} möchte die Stromrechnung für Oktober in Raten zahlen.",
           "{n} bittet um eine Kopie des Arbeitsvertrags.",
           "{n} meldet, dass die Überweisung seit drei Tagen nicht angekommen ist."],
    "pt": ["{n} pediu para remarcar a consulta para quinta-feira.",
           "{n} quer saber por que o cartão foi bloqueado."],
    "it": ["{n} chiede il rimborso del biglietto del treno cancellato.",
           "{n} vuole aggiornare l'indirizzo di fatturazione."],
    "ja": ["{n}さんは来週の会議をオンラインに変更したいと言っています。",
           "{n}さんは保険金の請求状況を問い合わせています。"],
    "zh": ["{n}询问他的保险理赔进度。", "{n}希望更改信用卡的账单地址。"],
}  # fmt: skip
LOCALES = {"americas": ["en", "en", "es", "pt"], "europe": ["en", "fr", "de", "es", "it"],
           "apac": ["en", "ja", "zh", "en"]}  # fmt: skip


def subject(name: str) -> str:
    return "subj-" + "-".join(name.lower().split())


def records(rng: random.Random) -> list[dict]:
    start = datetime(2026, 10, 1, 8, 0)
    rows = []
    for i in range(1, N + 1):
        region = rng.choice(sorted(NAMES))
        name = rng.choice(NAMES[region])
        locale = rng.choice(LOCALES[region])
        text = rng.choice(EN if locale == "en" else OTHER[locale]).format(n=name)
        if rng.random() < 0.05:  # a few longer messages: two requests in one
            text += " " + rng.choice(EN).format(n="They")
        when = start + timedelta(minutes=rng.randint(0, 60 * 24 * 50))
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(["Z", "+01:00", "-05:00", "+08:00", ""])
        rows.append({"record_id": f"r-{i:04d}", "subject_id": subject(name), "text": text, "region": region,
                     "locale": locale, "created_at": stamp})  # fmt: skip
    # deliberately bad rows: each must be quarantined with its reason
    rows[40]["text"] = ""  # text_empty
    rows[90]["region"] = "antarctica"  # region_unknown
    rows[150]["record_id"] = rows[149]["record_id"]  # duplicate record_id (both rows quarantined)
    rows[220]["subject_id"] = ""  # subject_id_empty
    return rows


def main() -> None:
    path = Path(__file__).with_name("sample_batch.csv")
    rows = records(random.Random(SEED))
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} records to {path}")


if __name__ == "__main__":
    main()
