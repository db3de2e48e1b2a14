"""Records: the per-party data model, file formats (HDF5, CSV, NPZ) and validation.

See ``docs/records.md`` for the columns, ranges, herald convention and file layouts.
"""

from diqkd.records.formats import (
    FORMATS,
    RecordWriter,
    format_of,
    iter_records,
    open_writer,
    read_records,
    write_records,
)
from diqkd.records.model import SCHEMA_VERSION, SCHEMAS, Column, Joint, Records, align
from diqkd.records.summary import summarize

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "SCHEMAS",
    "Column",
    "Joint",
    "RecordWriter",
    "Records",
    "align",
    "format_of",
    "iter_records",
    "open_writer",
    "read_records",
    "summarize",
    "write_records",
]
