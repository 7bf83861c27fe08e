"""Recorded driving data: the on-disk format, the recorder and the reader.

- :mod:`riskdistill.data.format`: the versioned layout (paths, ``frames.parquet`` schema, annotation keys);
- :mod:`riskdistill.data.annotate`: per-frame ground-truth annotations in the ego frame;
- :mod:`riskdistill.data.record`: ``record_suite`` (parallel, resumable expert recording);
- :mod:`riskdistill.data.storage`: ``RecordedDataset`` (lazy frame access) and ``validate_dataset``;
- :mod:`riskdistill.data.torch_dataset`, :mod:`~riskdistill.data.targets` (with the contracts of
  :mod:`riskdistill.contracts.batch`): the PyTorch side (``DrivingDataset``, ``collate_batch``, typed
  ``Batch``, target builders). They import torch, so they are not re-exported here.

See ``docs/data-format.md``.
"""

from riskdistill.data.format import FORMAT_VERSION
from riskdistill.data.record import RecordResult, RecordSettings, build_index, record_suite
from riskdistill.data.storage import DatasetError, FrameRecord, RecordedDataset, validate_dataset

__all__ = [
    "FORMAT_VERSION",
    "DatasetError",
    "FrameRecord",
    "RecordResult",
    "RecordSettings",
    "RecordedDataset",
    "build_index",
    "record_suite",
    "validate_dataset",
]
