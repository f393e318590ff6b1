"""The `data` section: where the dataset comes from and how pairs are drawn, and the generated people.

:class:`DataConfig` names the dataset directory (empty: generated people under ``cache_dir``),
how images and person ids are read and how training pairs are formed; its ``synthetic`` part,
:class:`SyntheticConfig`, holds every setting of the generated people dataset
(:mod:`vunet_core.data.synthetic`), which is passed around as one object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vunet_core.config.fields import check_fields, setting


@dataclass(frozen=True)
class SyntheticConfig:
    num_identities: int = setting(48, "number of generated people", min=2)
    poses_per_identity: int = setting(12, "images per person, each in another pose", min=2)
    val_identities: int = setting(8, "people held out for validation (never seen in training)", min=1)
    seed: int = setting(0, "generator seed; same seed, same bytes")
    background: str = setting(
        "scene",
        "scene (each person's own wall and floor colours) or studio (one plain light background for all)",
        choices=("scene", "studio"),
    )
    clothes: str = setting(
        "varied",
        "varied (patterned shirts, any saturation) or plain (one strong colour per garment)",
        choices=("varied", "plain"),
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class DataConfig:
    root: str = setting("", "dataset directory (index.json or index.p); empty = generated people under cache_dir")
    cache_dir: str = setting(".vunet_cache", "where generated data and preprocessed tensors are kept")
    allow_pickle: bool = setting(False, "allow reading the original index.p (a pickle runs code when loaded)")
    non_square: str = setting(
        "pad", "non-square images: pad to a square (replicate border) or stretch", choices=("pad", "stretch")
    )
    person_id_from: str = setting(
        "index",
        "person ids: from the index (else the parent folder), the parent folder, or the file-name prefix before '_'",
        choices=("index", "parent_folder", "filename_prefix"),
    )
    train_pairing: str = setting(
        "same_image",
        "training appearance: the same image (original) or another image of the same person",
        choices=("same_image", "same_person"),
    )
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig, metadata={"doc": "generated people"})

    def __post_init__(self) -> None:
        check_fields(self)
