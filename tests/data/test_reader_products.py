"""Products files: any subset of category, brand and price; bad prices counted or named."""

from __future__ import annotations

import logging

import polars as pl
import pytest

from funnelprint.data import EventDataError
from funnelprint.data.products import load_products, read_products


@pytest.mark.parametrize(
    "columns",
    [(), ("category",), ("brand",), ("price",), ("category", "price"), ("price", "brand"),
     ("category", "brand"), ("category", "brand", "price")],
)
def test_any_subset_of_category_brand_price(write, columns):
    values = {"category": "shoes.running", "brand": "acme", "price": "19.90"}
    header = ",".join(["product_id", *columns])
    line = ",".join(["p1", *[values[c] for c in columns]])
    products, report = load_products(write("products.csv", f"{header}\n{line}\n"))
    assert products.columns == ["product_id",
                                *[c for c in ("category", "brand", "price") if c in columns]]
    assert products.row(0, named=True)["product_id"] == "p1"
    if "price" in columns:
        assert products["price"].dtype == pl.Float64
        assert products["price"][0] == pytest.approx(19.9)
    assert report.products == 1 and not report.dropped and not report.nulled


def test_products_without_brand_from_parquet(tmp_path):
    path = tmp_path / "products.parquet"
    pl.DataFrame({"item_id": [1, 2], "category_code": ["a", None], "price": [1.5, None]}) \
        .write_parquet(path)
    products = read_products(path)
    assert products.columns == ["product_id", "category", "price"]
    assert products["product_id"].to_list() == ["1", "2"]
    assert products["price"].to_list() == [1.5, None]


def test_non_numeric_price_is_counted_and_set_to_null(write, caplog):
    text = "product_id,category,price\np1,a,9.5\np2,b,abc\np3,c,\np4,d,NaN\np5,e,1e400\n"
    path = write("products.csv", text)
    with caplog.at_level(logging.WARNING):
        products, report = load_products(path)
    assert products["product_id"].to_list() == ["p1", "p2", "p3", "p4", "p5"]
    assert products["price"].to_list() == [9.5, None, None, None, None]
    assert report.nulled == {"bad_price": 2}
    assert "2 price(s) set to null: bad_price" in caplog.text
    assert ("products.csv:3: column 'price': not a finite, non-negative number (value 'abc')"
            in caplog.text)


def test_non_numeric_price_raises_with_file_line_column_and_value(write):
    path = write("products.csv", "product_id,price\np1,9.5\np2,12,50\np3,abc\n")
    with pytest.raises(EventDataError) as info:
        load_products(path, on_error="raise")
    err = info.value  # line 3 has a field too many: it comes first
    assert (err.line, err.code) == (3, "malformed_row")
    path = write("products2.csv", "product_id,price\np1,9.5\np3,abc\n")
    with pytest.raises(EventDataError) as info:
        load_products(path, on_error="raise")
    err = info.value
    assert (err.line, err.column, err.value, err.code) == (3, "price", "abc", "bad_price")
    assert str(err) == f"{path}:3: column 'price': not a finite, non-negative number (value 'abc')"


def test_rows_without_product_id_and_repeated_ids(write):
    text = "product_id,brand\np1,a\n,b\nNaN,c\np1,d\np2,e\n"
    products, report = load_products(write("products.csv", text))
    assert products.rows() == [("p1", "a"), ("p2", "e")]
    assert report.dropped == {"empty_product_id": 2, "duplicate_product_id": 1}


def test_products_file_without_a_recognised_header(write):
    with pytest.raises(EventDataError, match="no header recognised"):
        read_products(write("products.csv", "x,y,z,w\n1,2,3,4\n"))


def test_a_product_id_longer_than_the_service_takes_is_left_out_or_refused(write):
    text = f"product_id,price\np1,1\n{'p' * 201},2\n{'é' * 200},3\n"
    path = write("products.csv", text)
    products, report = load_products(path)
    assert products["product_id"].to_list() == ["p1", "é" * 200]  # characters, not bytes
    assert report.dropped == {"long_product_id": 1}
    with pytest.raises(EventDataError) as info:
        load_products(path, on_error="raise")
    assert (info.value.line, info.value.code) == (3, "long_product_id")
