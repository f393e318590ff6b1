"""Data for VUNet: stickmen, part crops, index readers, generated people, cache and loaders (spec §9).

The training loop calls :func:`check_data` before any compute and
:func:`prepare_data` to get :class:`Splits` (train examples and fixed validation
transfer pairs), then :func:`iterate_batches` for :class:`Batch` objects whose
images are float32 in [-1, 1]. Everything else here is the machinery behind
them: :mod:`.stickman` (spec §9.5), :mod:`.crops` (§9.6), :mod:`.index` (§9.1-9.3),
:mod:`.people`/:mod:`.render`/:mod:`.synthetic` (the generator), :mod:`.cache` and
:mod:`.loader`, and the ``vunet-data`` command in :mod:`.cli`.
"""

from vunet_core.data.cache import CacheSettings
from vunet_core.data.crops import make_crops
from vunet_core.data.errors import DataError
from vunet_core.data.index import DatasetIndex, convert_pickle, read_index
from vunet_core.data.joints import JOINT_ORDER
from vunet_core.data.loader import Batch, PairDataset, Splits, iterate_batches
from vunet_core.data.prepare import check_data, prepare_data, synthetic_dir
from vunet_core.data.stickman import make_stickman
from vunet_core.data.synthetic import generate_people

__all__ = [
    "JOINT_ORDER",
    "Batch",
    "CacheSettings",
    "DataError",
    "DatasetIndex",
    "PairDataset",
    "Splits",
    "check_data",
    "convert_pickle",
    "generate_people",
    "iterate_batches",
    "make_crops",
    "make_stickman",
    "prepare_data",
    "read_index",
    "synthetic_dir",
]
