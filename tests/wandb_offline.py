"""W&B offline runs for the tests: an environment that never reaches the network, and a run read back from its files.

An offline run keeps everything it logged in its transaction log, ``run-<id>.wandb`` (what ``wandb
sync`` uploads later), and the media it logged under ``files/``. The log is a LevelDB-style record
log (32 KiB blocks of chunks, each with a 7-byte header: checksum, length, type) after a 7-byte W&B
header; each record is one of wandb's own ``wandb_internal_pb2.Record`` protobuf messages.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = b":W&B"
_HEADER_SIZE = 7
_BLOCK = 32 * 1024
_CHUNK_HEADER = struct.Struct("<IHB")  # checksum, payload length, chunk type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def offline_environment(directory: Path) -> dict[str, str]:
    """Environment variables for an offline W&B run whose files all stay under ``directory``."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",  # no crash reports (they would go to the network)
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_DIR": str(directory),
        "WANDB_CONFIG_DIR": str(directory / "config"),
        "WANDB_CACHE_DIR": str(directory / "cache"),
        "WANDB_DATA_DIR": str(directory / "data"),
        "WANDB_ARTIFACT_DIR": str(directory / "artifacts"),
    }


def _payloads(data: bytes) -> list[bytes]:
    """The records of a transaction log, joined from their chunks."""
    if not data.startswith(_HEADER):
        raise ValueError(f"not a W&B transaction log: it starts with {data[:_HEADER_SIZE]!r}")
    records, pending, position = [], b"", _HEADER_SIZE
    while position + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _CHUNK_HEADER.size:  # the block's tail is padding
            position += left_in_block
            continue
        _, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        start = position + _CHUNK_HEADER.size
        position = start + length
        if kind == 0 and length == 0:  # a zeroed rest of the block
            position += left_in_block - _CHUNK_HEADER.size
            continue
        if kind not in (_FULL, _FIRST, _MIDDLE, _LAST) or position > len(data):
            raise ValueError(f"bad chunk (type {kind}, length {length}) at byte {start - _CHUNK_HEADER.size}")
        pending += data[start:position]
        if kind in (_FULL, _LAST):
            records.append(pending)
            pending = b""
    if pending:
        raise ValueError("the transaction log ends inside a record")
    return records


@dataclass
class OfflineRun:
    """What an offline W&B run logged: its history rows, its ``define_metric`` records, and its folder."""

    directory: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    #: ``define_metric`` by metric name (or glob, for glob definitions), the last one of each
    metrics: dict[str, Any] = field(default_factory=dict)
    #: for each definition in ``metrics``, how many history rows came before it
    defined_after_rows: dict[str, int] = field(default_factory=dict)
    #: whether the log holds the run's exit record (written when the run finished)
    exited: bool = False

    def rows_with(self, key: str) -> list[dict[str, Any]]:
        """The history rows that hold ``key``, in order."""
        return [row for row in self.history if key in row]

    def first_row_with(self, key: str) -> int:
        """The index in ``history`` of the first row that holds ``key``."""
        return next(index for index, row in enumerate(self.history) if key in row)

    def file(self, path: str) -> Path:
        """A file the run logged, by its run-relative path (a media file's ``path``)."""
        return self.directory / "files" / path


def _row(items: Any) -> dict[str, Any]:
    """A history row: ``{key: value}``, a media value as the dict of its fields (``{"_type": "image-file", ...}``)."""
    row: dict[str, Any] = {}
    for item in items:
        *parents, last = list(item.nested_key) or [item.key]
        into = row
        for parent in parents:
            into = into.setdefault(parent, {})
        into[last] = json.loads(item.value_json)
    return row


def read_offline_run(save_dir: Path) -> OfflineRun:
    """The one offline run under ``save_dir`` (a ``WandbLogger(save_dir=...)``), finished and read from its log.

    ``wandb.finish()`` returns before wandb's service has written the log out; ``wandb.teardown()``
    waits for the service to end. The log is complete when it holds the run's ``exit`` record.
    """
    import wandb
    from wandb.proto import wandb_internal_pb2

    wandb.finish()
    wandb.teardown()

    logs = sorted(Path(save_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if len(logs) != 1:
        raise AssertionError(f"expected one offline run under {save_dir}, found {[str(log) for log in logs]}")
    run = OfflineRun(logs[0].parent)
    for payload in _payloads(logs[0].read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            run.history.append(_row(record.history.item))
        elif kind == "metric":
            name = record.metric.name or record.metric.glob_name
            run.metrics[name] = record.metric
            run.defined_after_rows[name] = len(run.history)
        run.exited = run.exited or kind == "exit"
    if not run.exited:
        raise AssertionError(f"{logs[0]} holds no exit record: the run is not finished, or its log is cut short")
    return run
