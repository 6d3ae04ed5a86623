"""A printable summary of a built manifest: images per label and split, patients, boxes, left out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ..manifest import LABELS, SPLITS, ManifestRecord
from ..splits import patient_key

__all__ = ["format_summary"]


def format_summary(records: Sequence[ManifestRecord], skipped: Mapping[str, int] | None = None) -> str:
    """Lines of counts: images per label x split, patients per split, boxes, masks and what was left out."""
    counts = Counter(("loc. only" if r.localization_only else r.label, r.split) for r in records)
    patients = {split: {patient_key(r) for r in records if r.split == split} for split in SPLITS}
    splits = [s for s in SPLITS if patients[s]] + (["(none)"] if any(r.split is None for r in records) else [])
    lines = ["{:<10}".format("") + "".join(f"{s:>9}" for s in splits) + f"{'total':>9}"]
    for label in LABELS + (("loc. only",) if any(r.localization_only for r in records) else ()):
        row = [counts[(label, None if s == "(none)" else s)] for s in splits]
        lines.append(f"{label:<10}" + "".join(f"{n:>9}" for n in row) + f"{sum(row):>9}")
    lines.append(f"{'patients':<10}" + "".join(f"{len(patients.get(s, ())):>9}" for s in splits)
                 + f"{len({patient_key(r) for r in records}):>9}")
    boxed = [r for r in records if len(r.boxes)]
    lines.append(f"boxes: {sum(len(r.boxes) for r in boxed)} on {len(boxed)} image(s); "
                 f"masks: {sum(r.mask is not None for r in records)}")
    for reason, count in sorted((skipped or {}).items()):
        lines.append(f"left out: {count} image(s): {reason}")
    return "\n".join(lines)
