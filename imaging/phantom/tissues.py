"""Tissue classes of the phantom and what each looks like on CT (HU) and FDG-PET (SUV).

Values are textbook means; anatomy.py jitters them per seed so no two phantoms are identical. The
order matters: everything from FAT upwards is inside the patient.
"""

from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    AIR = 0
    COUCH = 1
    COUCH_FOAM = 2
    FAT = 3
    SOFT = 4
    MUSCLE = 5
    LUNG = 6
    AIRWAY = 7
    CORTICAL = 8
    MARROW = 9
    TEETH = 10
    CARTILAGE = 11
    DISC = 12
    CSF = 13
    CORD = 14
    BRAIN = 15
    VESSEL = 16
    PAROTID = 17
    SUBMANDIBULAR = 18
    THYROID = 19
    LYMPHOID = 20  # palatine and lingual tonsils, adenoids
    PRIMARY = 21
    NODE = 22
    NECROSIS = 23  # necrotic core of a nodal metastasis; part of the GTV


LESION = (Tissue.PRIMARY, Tissue.NODE, Tissue.NECROSIS)
# Where a tumour may grow: soft tissues and laryngeal cartilage, not bone, air, vessels or the spinal canal.
INVADABLE = (Tissue.FAT, Tissue.SOFT, Tissue.MUSCLE, Tissue.PAROTID, Tissue.SUBMANDIBULAR, Tissue.THYROID,
             Tissue.LYMPHOID, Tissue.CARTILAGE)  # fmt: skip

# (mean HU, texture amplitude HU, SUV)
_PROPERTIES = {
    Tissue.AIR: (-1000, 0, 0.0),
    Tissue.COUCH: (150, 20, 0.0),
    Tissue.COUCH_FOAM: (-900, 10, 0.0),
    Tissue.FAT: (-100, 8, 0.3),
    Tissue.SOFT: (35, 6, 0.8),
    Tissue.MUSCLE: (50, 5, 0.7),
    Tissue.LUNG: (-840, 30, 0.4),
    Tissue.AIRWAY: (-995, 0, 0.0),
    Tissue.CORTICAL: (1000, 80, 0.3),
    Tissue.MARROW: (280, 60, 1.5),
    Tissue.TEETH: (2400, 150, 0.2),
    Tissue.CARTILAGE: (160, 40, 0.5),
    Tissue.DISC: (85, 10, 0.6),
    Tissue.CSF: (8, 3, 0.2),
    Tissue.CORD: (32, 3, 1.0),
    Tissue.BRAIN: (36, 3, 7.0),
    Tissue.VESSEL: (45, 4, 1.6),
    Tissue.PAROTID: (5, 8, 2.0),
    Tissue.SUBMANDIBULAR: (50, 5, 2.0),
    Tissue.THYROID: (100, 10, 1.5),
    Tissue.LYMPHOID: (45, 5, 2.6),
    Tissue.PRIMARY: (60, 10, 10.0),
    Tissue.NODE: (55, 8, 6.0),
    Tissue.NECROSIS: (20, 6, 1.2),
}


def table(column: int) -> np.ndarray:
    """Lookup array indexed by Tissue value: 0 mean HU, 1 texture amplitude, 2 SUV."""
    values = np.zeros(len(Tissue), dtype=np.float32)
    for tissue, properties in _PROPERTIES.items():
        values[tissue] = properties[column]
    return values
