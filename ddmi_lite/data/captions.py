"""Captions of the procedural furniture, in the Text2Shape format (paper Sec. 4.2, reference §1.9).

Every object gets two paraphrases (:func:`make_captions`) that state each of its attributes —
category, height class, and the category's own parts (legs, back, shade, shelves, …) — in
different orders; a value with no word ("medium" height, a straight sofa) is the unmarked
default. The captions file has Text2Shape's columns (:data:`CAPTION_COLUMNS`), one row per
caption, every category in one ``captions.tablechair.csv``: :func:`captions_csv` writes it and
:func:`load_captions` reads it (and Text2Shape's own file) as ``{modelId: [descriptions]}``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ddmi_lite.errors import DDMIError

SYNSETS = {"chair": "03001627", "table": "04379243", "lamp": "03636649",  # ShapeNet synset ids
           "shelf": "02871439", "sofa": "04256520"}
CAPTIONS_CSV = "captions.tablechair.csv"
CAPTION_COLUMNS = ("id", "modelId", "description", "category", "topLevelSynsetId", "subSynsetId")
HEIGHT_WORDS = {"chair": ("short", "tall"), "table": ("low", "tall"), "shelf": ("short", "tall")}
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


# ----------------------------------------------------------------------------- caption text

def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" or phrase.startswith("L-") else "a ") + phrase


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _caption_parts(attrs: dict) -> tuple[list[str], str, list[str]]:
    """(adjectives, noun, features) stating every attribute of one object."""
    cat = attrs["category"]
    adjs = []
    if attrs.get("height_class") in ("short", "tall"):
        adjs.append(HEIGHT_WORDS[cat][attrs["height_class"] == "tall"])
    if cat == "chair":
        base = {"four_legs": "four legs", "three_legs": "three legs", "pedestal": "a swivel pedestal base"}
        feats = [f"a {attrs['back']} back", base[attrs["base"]]]
        return (adjs + ([] if attrs["has_armrests"] else ["armless"]), "chair",
                feats + (["armrests"] if attrs["has_armrests"] else []))
    if cat == "table":
        legs = "a single pedestal leg" if attrs["n_legs"] == 1 else f"{_NUMBERS[attrs['n_legs']]} legs"
        return adjs + [attrs["top"]], "table", [legs]
    if cat == "lamp":
        base = "a tripod base" if attrs["base"] == "tripod" else f"a {attrs['base']} base"
        arm = "an angled arm" if attrs["arm"] == "angled" else "a straight stem"
        return adjs, f"{attrs['lamp_type']} lamp", [f"a {attrs['shade']} shade", base, arm]
    if cat == "shelf":
        feats = [f"{_NUMBERS[attrs['n_shelves']]} shelves",
                 "side panels" if attrs["has_side_panels"] else "four corner posts",
                 "a back panel" if attrs["has_back"] else "an open back"]
        return adjs, "bookshelf", feats
    adjs += (["L-shaped"] if attrs["shape"] == "L-shaped" else []) + [f"{_NUMBERS[attrs['n_seats']]}-seater"]
    adjs += [] if attrs["has_armrests"] else ["armless"]
    feats = (["armrests"] if attrs["has_armrests"] else []) + ["short legs" if attrs["has_legs"] else "a skirted base"]
    return adjs, "sofa", feats


def make_captions(attrs: dict, rng: np.random.Generator) -> list[str]:
    """Two Text2Shape-style paraphrases that state the same attributes in different orders."""
    adjs, noun, feats = _caption_parts(attrs)
    first = _article(" ".join([*adjs, noun])) + f" with {_join(feats)}"
    shuffled = [feats[i] for i in rng.permutation(len(feats))]
    second = _article(" ".join([*adjs, noun])) + f" that has {_join(shuffled)}"
    return [first, second]


# ----------------------------------------------------------------------------- the captions file

def load_captions(csv_path: str | os.PathLike) -> dict[str, list[str]]:
    """Text2Shape-style CSV → {modelId: [descriptions in file order]} (empty descriptions skipped)."""
    path = Path(csv_path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"modelId", "description"} - set(reader.fieldnames or ())
            if missing:
                raise DDMIError(f"captions file {path} lacks the columns {sorted(missing)} "
                                f"(found {reader.fieldnames}); expected Text2Shape's {CAPTION_COLUMNS}")
            captions: dict[str, list[str]] = {}
            for row in reader:
                text = (row.get("description") or "").strip()
                if row.get("modelId") and text:
                    captions.setdefault(row["modelId"], []).append(text)
    except OSError as err:
        raise DDMIError(f"captions file {path} cannot be read ({err})") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise DDMIError(f"captions file {path} is not a UTF-8 CSV ({err})") from err
    return captions


def captions_csv(shapes) -> bytes:
    """The captions file of ``shapes`` (anything with ``id``, ``category`` and ``captions``), as bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CAPTION_COLUMNS)
    row = 0
    for shape in shapes:
        for text in shape.captions:
            synset = SYNSETS[shape.category]
            writer.writerow([row, shape.id, text, shape.category.capitalize(), synset, synset])
            row += 1
    return buffer.getvalue().encode()
