"""A small synthetic VOCdevkit: the real folder layout and annotation XML format, tiny JPEGs.

Which images the study's rule (test split, ≥2 classes of non-difficult objects, fits 1920×1080 at
×2, ascending id) keeps, by construction:

========  ========  ==========================================  ==================================
id        split     non-difficult objects                       kept?
========  ========  ==========================================  ==================================
000001    test      dog, person                                 yes (1st)
000002    test      train                                       no: one class
000003    test      sofa, chair                                 yes (2nd)
000004    test      car, car, car                               no: three objects, one class
000005    trainval  cat, dog                                    no: not in the test split
000006    test      person (+ a difficult chair)                no: the chair is difficult
000007    test      horse, person                               no: 970 px wide > 960
000008    test      bird, cat, dog                              yes (3rd)
000009    test      horse, person (+ a difficult dog)           yes (4th)
========  ========  ==========================================  ==================================
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: id → (split, width, height, [(class, difficult)])
IMAGES = {
    "000001": ("test", 35, 50, [("dog", 0), ("person", 0)]),
    "000002": ("test", 33, 50, [("train", 0)]),
    "000003": ("test", 50, 37, [("sofa", 0), ("chair", 0)]),
    "000004": ("test", 50, 40, [("car", 0), ("car", 0), ("car", 0)]),
    "000005": ("trainval", 50, 37, [("cat", 0), ("dog", 0)]),
    "000006": ("test", 50, 37, [("person", 0), ("chair", 1)]),
    "000007": ("test", 970, 30, [("horse", 0), ("person", 0)]),
    "000008": ("test", 40, 30, [("bird", 0), ("cat", 0), ("dog", 0)]),
    "000009": ("test", 44, 33, [("horse", 0), ("person", 0), ("dog", 1)]),
}
SELECTED_3 = ["000001", "000003", "000008"]
QUALIFYING = ["000001", "000003", "000008", "000009"]

_OBJECT = """\
\t<object>
\t\t<name>{name}</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>{truncated}</truncated>
\t\t<difficult>{difficult}</difficult>
\t\t<bndbox>
\t\t\t<xmin>1</xmin>
\t\t\t<ymin>1</ymin>
\t\t\t<xmax>{width}</xmax>
\t\t\t<ymax>{height}</ymax>
\t\t</bndbox>
\t</object>
"""

_ANNOTATION = """\
<annotation>
\t<folder>VOC2007</folder>
\t<filename>{image_id}.jpg</filename>
\t<source>
\t\t<database>The VOC2007 Database</database>
\t\t<annotation>PASCAL VOC2007</annotation>
\t\t<image>flickr</image>
\t</source>
\t<size>
\t\t<width>{width}</width>
\t\t<height>{height}</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
{objects}</annotation>
"""


def make_vocdevkit(root: Path) -> Path:
    """Write the devkit under ``root``; returns the ``VOCdevkit`` folder."""
    voc = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    rng = np.random.default_rng(7)
    splits: dict[str, list[str]] = {"test": [], "trainval": []}
    for image_id, (split, width, height, objects) in IMAGES.items():
        splits[split].append(image_id)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=90)
        xml_objects = "".join(
            _OBJECT.format(name=name, difficult=difficult, truncated=index % 2, width=width, height=height)
            for index, (name, difficult) in enumerate(objects)
        )
        annotation = _ANNOTATION.format(image_id=image_id, width=width, height=height, objects=xml_objects)
        (voc / "Annotations" / f"{image_id}.xml").write_text(annotation)
    for split, ids in splits.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{image_id}\n" for image_id in ids))
    return root / "VOCdevkit"
