"""The stage tables: written with their row type's columns, read back as text, and a missing file or column is
one line naming it."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.core.errors import PipelineError
from pipeline.dataset.manifests import MANIFEST, CleanFile, ResizedFile, columns, read_table, write_table


def test_a_table_is_written_with_its_row_types_columns_and_read_back_as_text(tmp_path):
    rows = [{"file": "sky/a.png", "category": "sky", "clean_file": "sky/a.jpg", "width": 9}]  # extra keys are left out
    write_table(tmp_path / MANIFEST, ResizedFile, rows)
    assert (tmp_path / MANIFEST).read_text() == "file,category,clean_file\nsky/a.png,sky,sky/a.jpg\n"
    table = read_table(tmp_path / MANIFEST, ResizedFile)
    assert list(table.columns) == columns(ResizedFile) and table.to_dict("records") == [{k: rows[0][k] for k in columns(ResizedFile)}]


def test_a_missing_table_says_which_and_what_to_do(tmp_path):
    with pytest.raises(PipelineError, match=r"clean/manifest.csv not found: run the stages before this one first \(dvc repro\)$"):
        read_table(tmp_path / "clean" / MANIFEST, CleanFile)


def test_a_table_without_the_columns_of_its_row_type_is_one_line_naming_them(tmp_path):
    pd.DataFrame({"file": ["a.png"], "category": ["sky"]}).to_csv(tmp_path / MANIFEST, index=False)
    with pytest.raises(PipelineError) as info:
        read_table(tmp_path / MANIFEST, ResizedFile)
    assert str(info.value) == f"{tmp_path / MANIFEST}: no column clean_file: not written by this pipeline's stages (dvc repro)"
