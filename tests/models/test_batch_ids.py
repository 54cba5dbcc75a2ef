"""Customer id files for batch recommendations: what is left out is said."""

from __future__ import annotations

import logging

from funnelprint.models.batch import read_customers


def test_repeated_and_blank_ids_are_answered_once_and_counted(tmp_path, caplog):
    path = tmp_path / "ids.txt"
    path.write_text("customer_id\nu1\nu2\n\nu1\n u2 \nu3\n")
    with caplog.at_level(logging.WARNING):
        ids = read_customers(path)
    assert ids.tolist() == ["u1", "u2", "u3"]
    assert "2 customer id(s) listed more than once answered once; 1 blank" in caplog.text


def test_a_clean_id_file_says_nothing(tmp_path, caplog):
    path = tmp_path / "ids.csv"
    path.write_text("customer_id,other\nu1,a\nu2,b\n")
    with caplog.at_level(logging.WARNING):
        assert read_customers(path).tolist() == ["u1", "u2"]
    assert not caplog.text
