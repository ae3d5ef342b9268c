"""Read an offline W&B run (``wandb/offline-run-*/run-<id>.wandb``) without a server.

The file is the W&B SDK's append-only log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0),
then records in LevelDB's log format (32 KiB blocks; each chunk: CRC32 (4 bytes), length (2),
type (1: full, 2: first, 3: middle, 4: last); a block tail shorter than a chunk header is zero
padding), each record a ``wandb_internal_pb2.Record`` protobuf. Only what the tests look at is
decoded: the run record (name, group, job type, tags, config), config updates, history and summary.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def _chunks(data: bytes):
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file (no :W&B header)")
    pos, record = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # zero padding at the end of a block
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        payload = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind == 1:
            yield payload
        elif kind == 2:
            record = payload
        elif kind == 3:
            record += payload
        elif kind == 4:
            yield record + payload
            record = b""


def _items(items, key_field: str = "key") -> dict:
    out = {}
    for it in items:
        key = ".".join(it.nested_key) if it.nested_key else getattr(it, key_field)
        out[key] = json.loads(it.value_json)
    return out


def read_offline_run(run_dir: str | Path) -> dict:
    """``{"name", "group", "job_type", "tags", "config", "history", "summary"}`` of one offline run."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    (path,) = run_dir.glob("run-*.wandb")
    out = {"name": None, "group": None, "job_type": None, "tags": [], "config": {}, "history": [], "summary": {}}
    for raw in _chunks(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(name=r.display_name, group=r.run_group, job_type=r.job_type, tags=list(r.tags))
            out["config"].update(_items(r.config.update))
        elif kind == "config":
            out["config"].update(_items(rec.config.update))
        elif kind == "history":
            out["history"].append(_items(rec.history.item))
        elif kind == "summary":
            out["summary"].update(_items(rec.summary.update))
    out["config"] = {k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
                     for k, v in out["config"].items()}
    for row in out["history"]:
        out["summary"].update({k: v for k, v in row.items() if not k.startswith("_")} | out["summary"])
    return out
