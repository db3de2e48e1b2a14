"""Records: the per-party data model, file formats (HDF5, CSV, NPZ) and validation."""

from diqkd.records.model import SCHEMA_VERSION, SCHEMAS, Column, Joint, Records, align

__all__ = ["SCHEMA_VERSION", "SCHEMAS", "Column", "Joint", "Records", "align"]
