"""Parquet shards with embedded images: one row per sample, in key order.

Columns: `key`, `input_image` and `edited_image` (a struct of `bytes` and
`path`, the storage of Hugging Face's `Image` feature, which the schema's
`huggingface` metadata declares, so `datasets` decodes them to images), then
the sample's metadata, one column per field, typed from the first sample.
Rows are written in row groups of at most ROW_GROUP_ROWS rows or
ROW_GROUP_BYTES of images, so a shard's memory stays bounded whatever its
size; the boundaries depend only on the samples, so the same samples give the
same bytes. The file is written to a temporary name and renamed when complete.

pyarrow is an optional dependency (`pip install 'sefa-render[parquet]'`):
it is imported here only, when a parquet shard is written.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from render.sinks.atomic import atomic_write

__all__ = ["ParquetShardWriter", "open_parquet_shard", "ROW_GROUP_ROWS", "ROW_GROUP_BYTES"]

ROW_GROUP_ROWS = 1000
ROW_GROUP_BYTES = 64 * 2**20
IMAGE_COLUMNS = ("input_image", "edited_image")


class ParquetShardWriter:
    """Append samples to the parquet file at `path` (same `add` as the WebDataset writer)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: Any = None  # a pyarrow.parquet.ParquetWriter, opened with the first row group's schema
        self._rows: list[dict[str, Any]] = []
        self._bytes = 0

    def add(self, key: str, extension: str, input_image: bytes, edited_image: bytes, metadata: dict[str, Any]) -> None:
        images = {column: {"bytes": data, "path": f"{key}.{column.split('_')[0]}.{extension}"}
                  for column, data in zip(IMAGE_COLUMNS, (input_image, edited_image))}
        self._rows.append({"key": key, **images, **metadata})
        self._bytes += len(input_image) + len(edited_image)
        if len(self._rows) >= ROW_GROUP_ROWS or self._bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        if self._writer is None:
            schema = pa.Table.from_pylist(self._rows[:1]).schema
            features = {"info": {"features": {column: {"_type": "Image"} for column in IMAGE_COLUMNS}}}
            schema = schema.with_metadata({"huggingface": json.dumps(features)})
            self._writer = pq.ParquetWriter(self._path, schema)
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._writer.schema))
        self._rows, self._bytes = [], 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@contextmanager
def open_parquet_shard(final: Path) -> Iterator[ParquetShardWriter]:
    """`with open_parquet_shard(path) as writer:` writes the file atomically; an exception leaves no file."""
    with atomic_write(final) as temporary:
        writer = ParquetShardWriter(temporary)
        try:
            yield writer
            writer.flush()
        finally:
            writer.close()
