"""The input contract: a corpus of bad inputs, each quarantined or rejected with a specific reason.

Pure and fast (no Prefect, no MPC).  Every case also checks the count invariant
``records_in == valid + quarantined`` and that no record text leaks into reasons or messages.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.io_contract import REASON_CODES, BatchUnusable, read_batch, validate_batch

MARK = "ZZSECRETMARKERZZ"
HEADER = "record_id,subject_id,text,region,locale,created_at\n"


def _csv(tmp_path, body: bytes | str, name="b.csv"):
    path = tmp_path / name
    data = body if isinstance(body, bytes) else body.encode()
    path.write_bytes(data)
    return str(path)


def _run(url: str, **kw):
    raw = read_batch(url)
    valid, quarantine = validate_batch(raw, **kw)
    assert raw.records_in == len(valid) + len(quarantine)
    dumped = quarantine.to_json() + valid.drop(columns=["text"]).to_json()
    assert MARK not in dumped
    return raw, valid, quarantine


def _reasons(quarantine: pd.DataFrame) -> dict[str, list[str]]:
    return {(f"row{row}" if pd.isna(r) else r): list(reasons)
            for r, row, reasons in zip(quarantine["record_id"], quarantine["row"],
                                       quarantine["reasons"], strict=True)}


def test_valid_csv_passes_whole(tmp_path):
    url = _csv(tmp_path, HEADER + f'a,s1,"hello {MARK}",europe,en,2026-01-01T00:00:00Z\n'
                                  'b,s2,"multi\nline, with comma",APAC,,\n')
    raw, valid, quarantine = _run(url)
    assert list(valid["record_id"]) == ["a", "b"] and quarantine.empty
    assert list(valid["region"]) == ["europe", "apac"]  # normalised to lower case
    assert valid["locale"].tolist() == ["en", None]


def test_record_level_problems_get_specific_reasons(tmp_path):
    long_text = MARK + "x" * 300_000  # hundreds of kilobytes
    url = _csv(tmp_path, HEADER
               + f"ok,s1,{MARK} fine,europe,,\n"
               + f"dup,s2,{MARK},europe,,\n"
               + f"dup,s3,{MARK},europe,,\n"
               + "empty,s4,,europe,,\n"
               + "blank,s5,   ,europe,,\n"
               + f"mars,s6,{MARK},mars,,\n"
               + f",s7,{MARK},europe,,\n"
               + f"nosubj,,{MARK},europe,,\n"
               + f"long,s8,{long_text},europe,,\n"
               + f"badloc,s9,{MARK},europe,!!,\n"
               + f"baddate,s10,{MARK},europe,en,yesterday\n")
    _, valid, quarantine = _run(url)
    assert list(valid["record_id"]) == ["ok"]
    reasons = _reasons(quarantine)
    assert reasons["dup"] == ["record_id_duplicate"]
    assert reasons["empty"] == ["text_empty"] and reasons["blank"] == ["text_empty"]
    assert reasons["mars"] == ["region_unknown"]
    assert reasons["row7"] == ["record_id_missing"]
    assert reasons["nosubj"] == ["subject_id_missing"]
    assert reasons["long"] == ["text_too_long"]
    assert reasons["badloc"] == ["locale_invalid"]
    assert reasons["baddate"] == ["created_at_invalid"]
    assert quarantine["record_id"].tolist().count("dup") == 2  # every copy is quarantined
    assert set().union(*map(set, quarantine["reasons"])) <= set(REASON_CODES)


def test_malformed_csv_rows_and_broken_quote_recover(tmp_path):
    url = _csv(tmp_path, HEADER
               + "a,s1,one,europe,,\n"
               + "b,s2,too,many,fields,here,europe\n"
               + f'c,s3,"broken quote {MARK},europe,,\n'
               + "d,s4,four,europe,,\n"
               + "e,s5,five,apac,,\n")
    _, valid, quarantine = _run(url)
    assert list(valid["record_id"]) == ["a", "d", "e"]  # the broken quote did not eat d and e
    assert quarantine[["row", "line"]].values.tolist() == [[2, 3], [3, 4]]
    assert all(r == ["malformed_row"] for r in quarantine["reasons"])


def test_non_utf8_bytes_keep_line_number(tmp_path):
    body = HEADER.encode() + b"a,s1,ok,europe,,\n" + b"b,s2,caf\xe9 \xff,europe,,\n" \
        + b"c,s3,fine,americas,,\n"
    _, valid, quarantine = _run(_csv(tmp_path, body))
    assert list(valid["record_id"]) == ["a", "c"]
    row = quarantine.iloc[0]
    assert (row["line"], row["record_id"], list(row["reasons"])) == (3, "b", ["undecodable_utf8"])


def test_jsonl_wrong_types_bad_json_and_bad_bytes(tmp_path):
    lines = [
        json.dumps({"record_id": "a", "subject_id": "s", "text": MARK, "region": "europe"}),
        json.dumps({"record_id": "b", "subject_id": "s", "text": 42, "region": "europe"}),
        json.dumps({"record_id": 7, "subject_id": "s", "text": MARK, "region": "europe"}),
        json.dumps({"record_id": "d", "subject_id": None, "text": MARK, "region": "apac"}),
        '{"record_id": "e", "text": ',
        json.dumps(["not", "an", "object"]),
    ]
    data = ("\n".join(lines) + "\n").encode() + b'{"record_id": "g", "text": "\xff"}\n'
    path = tmp_path / "b.jsonl"
    path.write_bytes(data)
    _, valid, quarantine = _run(str(path))
    assert list(valid["record_id"]) == ["a"]
    by_line = {int(line): list(r) for line, r in zip(quarantine["line"], quarantine["reasons"],
                                                      strict=True)}
    assert by_line == {2: ["text_not_string"], 3: ["record_id_not_string"],
                       4: ["subject_id_missing"], 5: ["malformed_row"], 6: ["malformed_row"],
                       7: ["undecodable_utf8"]}


@pytest.mark.parametrize("body, needle", [
    (b"", "is empty"),
    (b"  \n\n", "is empty"),
    (HEADER.encode(), "has no records"),
    (b"record_id,text\nx,y\n", "lacks required column(s) subject_id, region"),
    (b"record_id,record_id,subject_id,text,region\n", "repeats a column name"),
    (b"\xff\xfe,bad\n1,2\n", "not UTF-8"),
])
def test_whole_input_problems_are_rejected_with_a_fix(tmp_path, body, needle):
    with pytest.raises(BatchUnusable) as info:
        read_batch(_csv(tmp_path, body))
    assert needle in str(info.value)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(BatchUnusable, match="does not exist"):
        read_batch(str(tmp_path / "nope.csv"))
    with pytest.raises(BatchUnusable, match="use a .csv, .jsonl or .parquet"):
        read_batch(str(tmp_path / "batch.xlsx"))


def test_parquet_good_wrong_schema_and_garbage(tmp_path):
    good = pa.table({"record_id": ["a", "b"], "subject_id": ["s", "t"], "text": [MARK, ""],
                     "region": ["europe", "apac"],
                     "created_at": pa.array([pd.Timestamp("2026-01-01", tz="UTC"), None],
                                            pa.timestamp("us", tz="UTC"))})
    pq.write_table(good, tmp_path / "good.parquet")
    _, valid, quarantine = _run(str(tmp_path / "good.parquet"))
    assert list(valid["record_id"]) == ["a"]
    assert quarantine.iloc[0]["line"] is None or pd.isna(quarantine.iloc[0]["line"])
    assert list(quarantine.iloc[0]["reasons"]) == ["text_empty"]

    wrong = good.set_column(2, "text", pa.array([1, 2], pa.int64()))
    pq.write_table(wrong, tmp_path / "wrong.parquet")
    with pytest.raises(BatchUnusable, match="column 'text' .* has type int64, expected string"):
        read_batch(str(tmp_path / "wrong.parquet"))
    pq.write_table(good.drop_columns(["region"]), tmp_path / "noregion.parquet")
    with pytest.raises(BatchUnusable, match="lacks required column"):
        read_batch(str(tmp_path / "noregion.parquet"))
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(BatchUnusable, match="not a readable Parquet file"):
        read_batch(str(tmp_path / "garbage.parquet"))


def test_shipped_sample_batch_quarantines_exactly_its_planted_bad_rows():
    """data/sample_batch.csv (the main job's input, data/make_sample.py): 240 records, 5 bad."""
    raw, valid, quarantine = _run("data/sample_batch.csv")
    assert raw.records_in == 240 and len(valid) == 235
    assert set(valid["region"]) == {"americas", "europe", "apac"}
    assert set(valid["locale"]) == {"en", "es", "fr", "de", "pt", "it", "ja", "zh"}
    assert sorted(r for rs in quarantine["reasons"] for r in rs) == sorted(
        ["text_empty", "region_unknown", "record_id_duplicate", "record_id_duplicate", "subject_id_missing"])


def test_small_sample_is_valid_but_one():
    _, valid, quarantine = _run("data/sample_small.csv")
    assert len(valid) == 8 and set(valid["region"]) == {"americas", "europe", "apac"}
    assert len(set(valid["locale"])) >= 5
    assert [list(r) for r in quarantine["reasons"]] == [["text_empty"]]
