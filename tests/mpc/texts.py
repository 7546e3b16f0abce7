"""Deterministic, varied test texts: several languages and scripts, numbers, punctuation,
emoji, repeated words, random strings; from 1 token to past 128 tokens."""

from __future__ import annotations

import random

SENTENCES = [
    "The patient was discharged after three days of observation.",
    "Quarterly revenue rose by 4.5% to $1,234,567.89.",
    "El paciente refirió dolor torácico leve tras el ejercicio.",
    "La réunion du conseil est reportée au 3 décembre à 14 h 30.",
    "Die Kündigungsfrist beträgt drei Monate zum Quartalsende.",
    "患者は頭痛とめまいを訴えて来院した。",
    "该员工申请了为期两周的病假。",
    "Пациент жалуется на боль в груди.",
    "المريض يعاني من ارتفاع في ضغط الدم.",
    "रोगी को तेज बुखार है।",
    "고객이 환불을 요청했습니다.",
    "Ο ασθενής έχει πυρετό και βήχα.",
    "!!! ??? ... --- ;;; ::: ''' \"\"\"",
    "Call 555-0199 or e-mail j.doe@example.com before 2026-12-31T23:59:59Z.",
    "🙂🙃😀 🚀🔥 👍🏽 ❤️‍🔥",
    "Loan #88231: principal 250000, rate 3.875%, term 360 months.",
    "I", "ok", "?", "42", "😀",
]
WORDS = ["risk", "claim", "salary", "diagnosis", "invoice", "consent", "policy", "Zürich",
         "naïve", "coöperate", "東京", "данные", "données", "123", "4.56", "—", "…", "&"]


def varied_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = list(SENTENCES)
    while len(out) < n:
        kind = rng.randrange(6)
        if kind == 0:  # repeated words, up to past the maximum length
            out.append(" ".join([rng.choice(WORDS)] * rng.randint(1, 160)))
        elif kind == 1:  # random printable strings up to 400 characters
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_/()[]{}@#$%&*+=éüß"
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))).strip() or "x")
        elif kind == 2:  # several sentences joined
            out.append(" ".join(rng.sample(SENTENCES[:12], rng.randint(2, 8))))
        elif kind == 3:  # emoji runs
            out.append("".join(rng.choice("😀😂🙂🚀🔥👍🏽❤️🎉🤖🌍") for _ in range(rng.randint(1, 50))))
        elif kind == 4:  # numbers and punctuation
            out.append(" ".join(f"{rng.uniform(-1e6, 1e6):,.{rng.randint(0, 4)}f}" for _ in range(rng.randint(1, 30))))
        else:  # word salad across scripts
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 90))))
    return out[:n]
