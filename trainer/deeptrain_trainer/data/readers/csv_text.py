"""Text classification CSV: a header naming `input` and `concepts`; concepts separated by `|`."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection

from .. import uris
from ..errors import DatasetError, line_location
from ..records import TextRecord
from .common import annotation_file, require_known_concept

CONCEPT_SEPARATOR = "|"
REQUIRED_COLUMNS = ("input", "concepts")


def read_csv(uri: str, *, concepts: Collection[str] | None) -> list[TextRecord]:
    path = annotation_file(uri, ".csv", "csv")
    try:
        content = uris.read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(path, f"not UTF-8 text ({error.reason})", "save the file as UTF-8") from None
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise DatasetError(path, "the file is empty", "write a header line `input,concepts` and one row per text") from None
    except csv.Error as error:
        raise DatasetError(line_location(path, 1), f"not valid CSV ({error})") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise DatasetError(line_location(path, 1), f"the header lacks the column(s) {', '.join(missing)}",
                           "start the file with the header line `input,concepts`")
    input_column, concepts_column = (header.index(column) for column in REQUIRED_COLUMNS)
    records: list[TextRecord] = []
    row_start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise DatasetError(line_location(path, row_start), f"not valid CSV ({error})",
                               "quote fields that hold commas, quotes or line breaks") from None
        location = line_location(path, row_start)
        row_start = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetError(location, f"expected {len(header)} fields as in the header, got {len(row)}",
                               "quote fields that hold commas")
        text = row[input_column]
        if not text.strip():
            raise DatasetError(location, "the input text is empty", "remove the row or give it text")
        labels = [label.strip() for label in row[concepts_column].split(CONCEPT_SEPARATOR) if label.strip()]
        for label in labels:
            require_known_concept(label, concepts, location)
        records.append(TextRecord(text=text, concepts=labels, id=f"row-{len(records) + 1}", source=location))
    if not records:
        raise DatasetError(path, "the file has a header but no rows", "add one row per text")
    return records
