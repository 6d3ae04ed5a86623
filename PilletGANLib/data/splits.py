"""Patient-level train/val/test splits: every image of a patient lands in the same split."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

from ..errors import DataError
from .manifest import SPLITS, ManifestRecord

__all__ = ["assign_splits", "check_patient_disjoint", "patient_key", "split_by_folds"]


def patient_key(record: ManifestRecord) -> str:
    """The record's patient id, or its image stem when the patient is unknown (one image = one patient)."""
    return record.patient_id or f"image:{record.key}"


def _rank(patient: str, seed: int) -> bytes:
    """A seeded pseudo-random sort key: stable when patients are added or removed."""
    return hashlib.blake2b(f"{seed}\x00{patient}".encode(), digest_size=16).digest()


def assign_splits(records: Sequence[ManifestRecord], val_fraction: float = 0.15, test_fraction: float = 0.0,
                  seed: int = 0, stratify: bool = True) -> list[ManifestRecord]:
    """Assign ``train``/``val``/``test`` by patient, never by image.

    Patients are ordered by a seeded hash of their id (deterministic, and a patient keeps its
    split when others are added), then the first ``test_fraction`` go to ``test``, the next
    ``val_fraction`` to ``val`` and the rest to ``train``. With ``stratify`` this is done
    separately for patients with at least one disease image and patients with none, so both
    splits see both classes. Records without ``patient_id`` count as one patient per image.

    Returns:
        copies of the records, in the input order, with ``split`` set.
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise DataError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be >= 0 and sum to < 1")
    diseased: dict[str, bool] = defaultdict(bool)
    for record in records:
        diseased[patient_key(record)] |= record.is_disease
    strata: dict[bool, list[str]] = defaultdict(list)
    for patient, has_disease in diseased.items():
        strata[has_disease if stratify else False].append(patient)
    split_of: dict[str, str] = {}
    for patients in strata.values():
        ordered = sorted(patients, key=lambda p: _rank(p, seed))
        n_test = round(test_fraction * len(ordered))
        n_val = round(val_fraction * len(ordered))
        for position, patient in enumerate(ordered):
            split_of[patient] = "test" if position < n_test else "val" if position < n_test + n_val else "train"
    return [dataclasses.replace(record, split=split_of[patient_key(record)]) for record in records]


def split_by_folds(records: Sequence[ManifestRecord], folds: Sequence[int], val_folds: Iterable[int] = (3,),
                   test_folds: Iterable[int] = ()) -> list[ManifestRecord]:
    """Assign splits from given cross-validation folds (``folds[i]`` is the fold of ``records[i]``).

    Folds in ``test_folds`` become ``test``, folds in ``val_folds`` ``val``, all others ``train``.
    The folds must already be patient-grouped; this is checked.
    """
    val_set, test_set = set(val_folds), set(test_folds)
    if val_set & test_set:
        raise DataError(f"folds {sorted(val_set & test_set)} are both validation and test folds")
    if len(folds) != len(records):
        raise DataError(f"{len(folds)} folds given for {len(records)} records")
    assigned = [dataclasses.replace(record, split="test" if fold in test_set else "val" if fold in val_set else "train")
                for record, fold in zip(records, folds, strict=True)]
    check_patient_disjoint(assigned)
    return assigned


def check_patient_disjoint(records: Iterable[ManifestRecord]) -> None:
    """Raise :class:`DataError` naming a patient whose images lie in more than one split."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.split is not None:
            splits_of[patient_key(record)].add(record.split)
    for patient, splits in splits_of.items():
        if len(splits) > 1:
            ordered = [s for s in SPLITS if s in splits]
            raise DataError(f"patient {patient} has images in several splits ({', '.join(ordered)}): "
                            "splits must be by patient")
