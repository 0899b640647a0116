"""File-level errors of raw ingestion and row-level rules of validation, on hand-made files."""

import datetime as dt

import polars as pl
import pytest

from hm_recs.core.schema import TABLE_COLUMNS
from hm_recs.core.source import SourceError, SourceFile, read_raw, resolve
from hm_recs.core.validation import RuleContext, ValidationLimits, split

WEEK = dt.date(2020, 9, 16)
C1, C2 = "a" * 64, "b" * 64
TX_HEADER = "t_dat,customer_id,article_id,price,sales_channel_id\n"


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def read_tx(tmp_path, body: str | bytes, history=False):
    data = (TX_HEADER.encode() + body) if isinstance(body, bytes) else TX_HEADER + body
    name = "transactions_train.csv" if history else "transactions/week=2020-09-16.csv"
    path = write(tmp_path, name.replace("/", "_"), data)
    return read_raw(path, SourceFile("transactions", name, "csv", history=history), week=WEEK)


def ctx(**kw):
    return RuleContext(
        week=WEEK,
        known_customer_ids=pl.Series([C1, C2]),
        known_article_ids=pl.Series(["0108775015", "0108775044"]),
        **kw,
    )


# ------------------------------------------------------------------------------------ file level


def test_missing_file_is_named():
    with pytest.raises(SourceError, match="articles.csv.*file_present"):
        resolve("articles", {"customers.csv"})
    with pytest.raises(SourceError, match="no transactions file for week 2020-09-16"):
        resolve("transactions", {"articles.csv"}, WEEK)


def test_weekly_file_preferred_over_history():
    names = {"transactions_train.csv", "transactions/week=2020-09-16.parquet"}
    assert resolve("transactions", names, WEEK).name == "transactions/week=2020-09-16.parquet"
    assert resolve("transactions", names, dt.date(2020, 9, 9)).history


def test_empty_file(tmp_path):
    path = write(tmp_path, "articles.csv", b"")
    with pytest.raises(SourceError, match="articles.csv: file is empty.*file_not_empty"):
        read_raw(path, SourceFile("articles", "articles.csv", "csv", False))


def test_header_only_file(tmp_path):
    path = write(tmp_path, "customers.csv", ",".join(TABLE_COLUMNS["customers"]) + "\n")
    with pytest.raises(SourceError, match="no data rows"):
        read_raw(path, SourceFile("customers", "customers.csv", "csv", False))


def test_missing_and_extra_columns(tmp_path):
    missing = write(tmp_path, "m.csv", "t_dat,customer_id,article_id,price\n2020-09-16,x,y,0.1\n")
    with pytest.raises(SourceError, match=r"missing column\(s\) \['sales_channel_id'\].*columns_present"):
        read_raw(missing, SourceFile("transactions", "m.csv", "csv", False), week=WEEK)
    extra = write(tmp_path, "e.csv", TX_HEADER.strip() + ",store\n2020-09-16,x,y,0.1,1,s1\n")
    source = SourceFile("transactions", "e.csv", "csv", False)
    with pytest.raises(SourceError, match=r"unexpected column\(s\) \['store'\].*no_extra_columns"):
        read_raw(extra, source, week=WEEK)
    frame = read_raw(extra, source, week=WEEK, allow_extra_columns=True)
    assert frame.columns == list(TABLE_COLUMNS["transactions"]) + ["source_file", "source_row"]


def test_unparseable_csv_names_the_file(tmp_path):
    path = write(
        tmp_path, "bad.csv", TX_HEADER + '2020-09-16,"unterminated,x,0.1,1\n2020-09-16,a,b,0.1,1,extra,fields\n'
    )
    with pytest.raises(SourceError, match="(?s)bad.csv: cannot parse the file.*file_readable"):
        read_raw(path, SourceFile("transactions", "bad.csv", "csv", False), week=WEEK)


def test_history_file_keeps_week_rows_and_undated_rows_with_file_row_numbers(tmp_path):
    frame = read_tx(
        tmp_path,
        f"2020-09-15,{C1},0108775015,0.1,1\n2020-09-16,{C1},0108775015,0.1,1\n"
        f"2020-09-23,{C1},0108775015,0.1,1\nnot-a-date,{C1},0108775015,0.1,1\n",
        history=True,
    )
    assert frame["source_row"].to_list() == [2, 4]
    assert frame["t_dat"].to_list() == ["2020-09-16", "not-a-date"]


# ------------------------------------------------------------------------------------ row level


def test_clean_rows_pass_and_duplicates_are_units(tmp_path):
    raw = read_tx(
        tmp_path,
        f"2020-09-16,{C1},0108775015,0.05,1\n2020-09-16,{C1},0108775015,0.05,1\n2020-09-22,{C2},108775044,0.02,2\n",
    )
    result = split("transactions", raw, ctx())
    assert result.quarantine.height == 0 and result.clean.height == 3
    assert result.clean["article_id"].to_list()[-1] == "0108775044"  # leading zero restored once, here
    assert result.clean.schema["t_dat"] == pl.Date and result.clean.schema["sales_channel_id"] == pl.Int8


@pytest.mark.parametrize(
    "row, rule, words",
    [
        ("2020-09-16,{C1},0108775015,-0.01,1", "price_range", "price=-0.01"),
        ("2020-09-16,{C1},0108775015,250.0,1", "price_range", "price=250.0"),
        ("2020-09-16,{C1},0108775015,cheap,1", "price_range", "price=cheap"),
        ("2020-09-16,{C1},0108775015,0.01,3", "sales_channel_known", "sales_channel_id=3"),
        ("2020-09-16,{C1},0108775015,0.01,", "sales_channel_known", "sales_channel_id=<empty>"),
        ("2020-09-23,{C1},0108775015,0.01,1", "t_dat_in_week", "outside week 2020-09-16..2020-09-22"),
        ("2020-09-15,{C1},0108775015,0.01,1", "t_dat_in_week", "t_dat=2020-09-15"),
        ("16/09/2020,{C1},0108775015,0.01,1", "t_dat_date", "t_dat=16/09/2020"),
        ("2020-09-16,{C3},0108775015,0.01,1", "customer_known", "not in the validated customers"),
        ("2020-09-16,{C1},0999999001,0.01,1", "article_known", "article_id=0999999001"),
        ("2020-09-16,not-a-hash,0108775015,0.01,1", "customer_id_format", "customer_id=not-a-hash"),
        ("2020-09-16,{C1},ABC,0.01,1", "article_id_format", "article_id=ABC"),
    ],
)
def test_each_bad_row_is_quarantined_with_file_row_and_rule(tmp_path, row, rule, words):
    good = f"2020-09-16,{C1},0108775015,0.05,1\n"
    raw = read_tx(tmp_path, good + row.format(C1=C1, C3="c" * 64) + "\n" + good)
    result = split("transactions", raw, ctx())
    assert result.clean.height == 2 and result.quarantine.height == 1  # nothing lost: 2 + 1 = 3
    bad = result.quarantine.row(0, named=True)
    assert rule in bad["rule"].split(", ")
    assert words in bad["reason"]
    assert bad["source_row"] == 2 and bad["source_file"] == "transactions/week=2020-09-16.csv"
    assert result.examples()[rule][0].startswith("transactions/week=2020-09-16.csv row 2: ")


def test_non_utf8_bytes_are_quarantined_not_fatal(tmp_path):
    raw = read_tx(
        tmp_path,
        f"2020-09-16,{C1},0108775015,0.05,1\n".encode()
        + b"2020-09-16,\xff\xfe"
        + C1[2:].encode()
        + b",0108775015,0.05,1\n",
    )
    result = split("transactions", raw, ctx())
    assert result.clean.height == 1
    assert "utf8" in result.quarantine["rule"][0] and result.quarantine["source_row"][0] == 2


def articles_csv(rows: list[dict]) -> str:
    base = {
        "article_id": "0108775015",
        "product_code": "108775",
        "prod_name": "Strap top",
        "product_type_no": "253",
        "product_type_name": "Vest top",
        "product_group_name": "Garment Upper body",
        "graphical_appearance_no": "1010016",
        "graphical_appearance_name": "Solid",
        "colour_group_code": "9",
        "colour_group_name": "Black",
        "perceived_colour_value_id": "4",
        "perceived_colour_value_name": "Dark",
        "perceived_colour_master_id": "5",
        "perceived_colour_master_name": "Black",
        "department_no": "1676",
        "department_name": "Jersey Basic",
        "index_code": "A",
        "index_name": "Ladieswear",
        "index_group_no": "1",
        "index_group_name": "Ladieswear",
        "section_no": "16",
        "section_name": "Womens Everyday Basics",
        "garment_group_no": "1002",
        "garment_group_name": "Jersey Basic",
        "detail_desc": "Jersey top.",
    }
    frame = pl.DataFrame([{**base, **r} for r in rows]).select(TABLE_COLUMNS["articles"])
    return frame.write_csv()


def test_duplicate_article_ids_keep_the_first(tmp_path):
    path = write(tmp_path, "articles.csv", articles_csv([{}, {"prod_name": "Other"}, {"article_id": "0108775044"}]))
    raw = read_raw(path, SourceFile("articles", "articles.csv", "csv", False))
    result = split("articles", raw, RuleContext())
    assert result.clean["prod_name"].to_list() == ["Strap top", "Strap top"]
    assert result.quarantine["rule"].to_list() == ["article_id_unique"] and result.quarantine["source_row"][0] == 2


def test_article_codes_must_be_integers_and_match_product_code(tmp_path):
    path = write(
        tmp_path,
        "articles.csv",
        articles_csv(
            [{"product_type_no": "x"}, {"article_id": "0200000001"}, {"article_id": "0108775099", "detail_desc": None}]
        ),
    )
    result = split("articles", read_raw(path, SourceFile("articles", "articles.csv", "csv", False)), RuleContext())
    assert result.rule_counts == {"codes_integer": 1, "article_id_product_code": 1}
    assert result.clean.height == 1 and result.clean["detail_desc"][0] is None  # detail_desc may be empty


def test_customer_rules(tmp_path):
    header = ",".join(TABLE_COLUMNS["customers"]) + "\n"
    body = (
        f"{C1},1.0,1.0,ACTIVE,Regularly,23.0,p\n{C2},,,PRE-CREATE,NONE,,p\n"
        f"{'c' * 64},,,ACTIVE,NONE,7,p\n{'d' * 64},2,,ACTIVE,NONE,30,p\n"
        f"{'e' * 64},,,GOLD,NONE,30,p\n{C1},,,ACTIVE,NONE,40,p\n"
    )
    path = write(tmp_path, "customers.csv", header + body)
    result = split("customers", read_raw(path, SourceFile("customers", "customers.csv", "csv", False)), RuleContext())
    assert result.clean["customer_id"].to_list() == [C1, C2]
    assert result.clean["age"].to_list() == [23, None] and result.clean["FN"].to_list() == [1, None]
    assert result.rule_counts == {
        "customer_id_unique": 1,
        "age_range": 1,
        "flags_valid": 1,
        "club_member_status_known": 1,
    }


def test_limits_are_configuration():
    raw = pl.DataFrame(
        {
            "t_dat": ["2020-09-16"],
            "customer_id": [C1],
            "article_id": ["0108775015"],
            "price": ["0.8"],
            "sales_channel_id": ["1"],
            "source_file": ["f"],
            "source_row": [1],
        }
    )
    assert split("transactions", raw, ctx()).quarantine.height == 0
    assert split("transactions", raw, ctx(limits=ValidationLimits(max_price=0.5))).quarantine.height == 1


def test_great_expectations_suite_reports_failed_expectations(tmp_path):
    from hm_recs.core.expectations import run_suite

    raw = read_tx(
        tmp_path,
        f"2020-09-16,{C1},0108775015,0.05,1\n2020-09-16,{C1},0108775015,-1,1\n2020-09-30,{C1},0108775015,0.05,9\n",
    )
    outcomes = run_suite("transactions", raw, ctx())
    failed = {(o.rule, o.expectation): o for o in outcomes if not o.success}
    assert failed[("price_range", "expect_column_values_to_be_between")].unexpected_count == 1
    assert failed[("price_range", "expect_column_values_to_be_between")].examples == ["-1.0"]
    assert failed[("sales_channel_known", "expect_column_values_to_be_in_set")].unexpected_count == 1
    assert ("t_dat_in_week", "expect_column_values_to_be_between") in failed
    assert all(o.success for o in outcomes if o.rule in ("customer_known", "article_known", "utf8"))
