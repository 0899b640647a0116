"""How model states become bytes and versions: torch states weights-only, JSON states (the LightGBM ranker's
text model) as sorted JSON; a version that names what the model is (weights and configuration), not how long
its training took. No Dagster; torch is imported only where a torch state is encoded."""

from __future__ import annotations

import hashlib
import io
import json
import math

from hm_recs.storage.location import content_digest

TRAINING_LOG_KEYS = frozenset({"history", "validation", "importances"})
"""State entries that record the training run (per-epoch losses and seconds, validation figures, importances):
kept in the artefact for the UI and the evaluation, left out of the version."""


def to_bytes(state: dict) -> tuple[bytes, str]:
    """A torch state (tensors and plain values) as bytes, and the digest of those bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    return data, content_digest(data)


def from_bytes(data: bytes) -> dict:
    """A state saved by `to_bytes`; weights_only=True, so a tampered artefact cannot run code."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def json_bytes(state: dict) -> tuple[bytes, str]:
    data = json.dumps(state, sort_keys=True, allow_nan=True).encode()
    return data, content_digest(data)


def state_version(state: dict) -> str:
    """``sha256:<hex>`` of the state's weights and configuration (everything but `TRAINING_LOG_KEYS`), read
    value by value (tensors by dtype, shape and bytes): two trainings that learnt the same weights from the same
    configuration have the same version, whatever their timings."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k not in TRAINING_LOG_KEYS})
    return "sha256:" + digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=str):
            digest.update(repr(key).encode() + b":")
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, list | tuple):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
            digest.update(b",")
        digest.update(b"]")
    elif hasattr(value, "detach") and hasattr(value, "dtype"):  # a torch tensor
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        digest.update(tensor.view(-1).view(dtype=_byte_dtype()).numpy().tobytes() if tensor.numel() else b"")
    elif hasattr(value, "tobytes") and hasattr(value, "dtype"):  # a numpy array
        digest.update(f"array:{value.dtype}:{value.shape}:".encode() + value.tobytes())
    elif isinstance(value, float) and math.isnan(value):
        digest.update(b"nan")
    else:
        digest.update(repr(value).encode())


def _byte_dtype():
    import torch

    return torch.uint8
