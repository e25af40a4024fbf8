"""The phantom's normal anatomy as formulas in millimetres, painted as tissue labels on any axial slice.

h is the height above the sternal notch in mm (superior positive; patient z = h + z offset), x and y
are LPS mm. Every structure is an analytic shape (superellipse, ellipsoid, arch, tube) whose size and
position follow per-seed profiles along h, so the same seed yields the same patient on a 512² CT, a
128² test CT or the PET's own grid. Each structure is evaluated only inside its bounding window, which
keeps a 512×512 slice at a few milliseconds.
"""

from dataclasses import dataclass, replace

import numpy as np

from .lattice import Lattice
from .tissues import Tissue

# Body outline and spine along h (anatomical mm, stretched per seed by Body.neck).
_H = np.array([-300, -60, -10, 20, 45, 80, 105, 125, 150, 175, 200, 230, 300], dtype=float)
_PROFILES = {
    "a": [185, 185, 178, 95, 62, 58, 62, 66, 70, 72, 74, 76, 72],  # half width
    "b_ant": [105, 105, 95, 65, 55, 52, 60, 80, 92, 95, 95, 95, 92],  # centre to front skin
    "b_post": [110, 110, 100, 70, 62, 62, 62, 64, 70, 78, 85, 90, 90],  # centre to back skin
    "p": [2.8, 2.8, 2.6, 2.3, 2.0, 2.0, 2.0, 2.1, 2.2, 2.2, 2.1, 2.0, 2.0],  # superellipse exponent
    "cy": [30, 30, 25, 20, 15, 15, 15, 15, 15, 15, 15, 15, 15],
    "vb_off": [45, 45, 38, 15, 6, 6, 6, 6, 8, 10, 12, 12, 12],  # vertebral body centre behind body centre
    "vb_lat": [15, 15, 14, 11, 9, 9, 9, 9, 9, 9, 9, 9, 9],
    "vb_ap": [13, 13, 12, 9, 8, 8, 8, 8, 8, 8, 8, 8, 8],
}
# Airway: gap between vertebral body and the airway's back wall, and the lumen's half axes.
_AIR_H = np.array([-300, -60, 0, 50, 58, 66, 70, 75, 80, 92, 100, 108, 150, 170, 188, 196], dtype=float)
_AIR = {
    "gap": [14, 14, 14, 14, 13, 12, 12, 12, 11, 9, 6, 5, 5, 5, 6, 6],
    "lat": [9, 9, 9, 8.5, 8, 7, 2.5, 2.5, 8, 9, 10, 10, 10, 10, 8, 0],
    "ap": [8, 8, 8, 8, 8, 8.5, 8, 8, 9, 9, 7, 7, 7, 8, 7, 0],
}
INSIDE = Tissue.FAT  # labels >= this are inside the patient


@dataclass(frozen=True)
class Level:
    """Where the main landmarks lie on one axial plane."""

    h: float
    cx: float
    cy: float
    a: float
    b_ant: float
    b_post: float
    p: float
    y_vb: float
    vb_lat: float
    vb_ap: float
    y_canal: float
    x_air: float
    y_air: float
    air_lat: float
    air_ap: float


@dataclass(frozen=True)
class Body:
    lateral: float  # width scale
    depth: float  # antero-posterior scale
    neck: float  # scale of heights
    cx0: float
    tilt: float  # lateral drift of the midline per mm of height
    cy0: float
    fat_mm: float
    swing: tuple[float, float, float]  # airway antero-posterior wobble: amplitude, wavelength, phase
    skull_base: float  # h of the skull base
    mandible: dict
    organs: tuple  # (tissue, (x, y, h) centre, (x, y, h) half axes)
    discs: np.ndarray  # h of intervertebral disc centres
    couch_y: float
    streaks: Lattice
    streak_threshold: float

    def profile(self, name: str, h: float) -> float:
        """Value of a body profile at height h, scaled to this patient."""
        value = float(np.interp(h, _H * self.neck, _PROFILES[name]))
        if name == "a":
            return value * self.lateral
        if name in ("b_ant", "b_post", "vb_off"):
            return value * self.depth
        return value

    def level(self, h: float) -> Level:
        cx = self.cx0 + self.tilt * (h - 100)
        cy = self.cy0 + self.profile("cy", h)
        y_vb = cy + self.profile("vb_off", h)
        vb_ap = self.profile("vb_ap", h)
        air = {k: float(np.interp(h, _AIR_H * self.neck, v)) for k, v in _AIR.items()}
        amplitude, wavelength, phase = self.swing
        y_air = y_vb - vb_ap - air["gap"] - air["ap"] + amplitude * np.sin(2 * np.pi * h / wavelength + phase)
        return Level(
            h=h, cx=cx, cy=cy, a=self.profile("a", h), b_ant=self.profile("b_ant", h), b_post=self.profile("b_post", h),
            p=self.profile("p", h), y_vb=y_vb, vb_lat=self.profile("vb_lat", h), vb_ap=vb_ap,
            y_canal=y_vb + vb_ap + 8, x_air=cx, y_air=float(y_air),
            air_lat=air["lat"], air_ap=air["ap"],
        )  # fmt: skip


def draw_body(rng: np.random.Generator, streak_rng: np.random.Generator) -> Body:
    """Draw one patient's proportions and organ positions."""
    lateral, depth, neck = rng.uniform(0.9, 1.12), rng.uniform(0.9, 1.12), rng.uniform(0.92, 1.08)
    draft = Body(
        lateral=lateral, depth=depth, neck=neck, cx0=rng.uniform(-6, 6), tilt=rng.uniform(-0.02, 0.02),
        cy0=rng.uniform(-8, 8), fat_mm=rng.uniform(4, 14),
        swing=(rng.uniform(1.5, 4), rng.uniform(80, 160), rng.uniform(0, 2 * np.pi)),
        skull_base=205 * neck, mandible={}, organs=(), discs=np.empty(0), couch_y=0.0,
        streaks=Lattice.random(streak_rng, (-300, -300, -330), (300, 330, 330), step=5.0, smooth=1.0),
        streak_threshold=rng.uniform(0.5, 0.9),
    )  # fmt: skip
    at = draft.level
    mand_h = 125 * neck
    mandible = {
        "chin_y": at(mand_h).cy - draft.profile("b_ant", mand_h) + rng.uniform(7, 10),
        "w": 46 * lateral * rng.uniform(0.95, 1.05),
        "d": 68 * depth * rng.uniform(0.95, 1.05),
        "h_chin": 104 * neck,
        "h_angle": 114 * neck,
        "h_alveolar": 138 * neck,
        "h_condyle": draft.skull_base - 6,
    }
    chin_y, w, d = mandible["chin_y"], mandible["w"], mandible["d"]
    s = (lateral + depth) / 2
    lv140, lv115, lv182, lv35 = at(140 * neck), at(115 * neck), at(182 * neck), at(35 * neck)
    organs = []
    for side in (-1, 1):
        organs += [
            (Tissue.PAROTID, (at(165 * neck).cx + side * (draft.profile("a", 165 * neck) - 20), chin_y + d + 12,
                              165 * neck), (11 * s, 18 * s, 25 * neck)),
            (Tissue.SUBMANDIBULAR, (at(116 * neck).cx + side * (w - 15), chin_y + 0.62 * d, 116 * neck),
             (10 * s, 13 * s, 11 * neck)),
            (Tissue.LYMPHOID, (lv140.x_air + side * (lv140.air_lat + 4), lv140.y_air + 1, 140 * neck), (6, 8, 10)),
            (Tissue.THYROID, (lv35.x_air + side * 17 * s, lv35.y_air + 2, 35 * neck), (7 * s, 10 * s, 20 * neck)),
        ]  # fmt: skip
    organs += [
        (Tissue.LYMPHOID, (lv115.x_air, lv115.y_air - lv115.air_ap - 5, 115 * neck), (12, 5, 8)),
        (Tissue.LYMPHOID, (lv182.x_air, lv182.y_air + lv182.air_ap + 3, 182 * neck), (10, 4, 8)),
        (Tissue.THYROID, (lv35.x_air, lv35.y_air - 12, 30 * neck), (12 * s, 3.5, 6)),
    ]
    discs, h = [], draft.skull_base - 30
    while h > -420:
        discs.append(h)
        h -= 16 * neck if h > 20 else 23
    heights = np.linspace(-300, 300, 121)
    couch_y = max(at(h).cy + draft.profile("b_post", h) for h in heights) + 1.0
    return replace(draft, mandible=mandible, organs=tuple(organs), discs=np.array(discs), couch_y=couch_y)


class Painter:
    """Paints tissue labels of one Body on axial planes of a fixed (xs, ys) pixel grid."""

    def __init__(self, body: Body, xs: np.ndarray, ys: np.ndarray):
        self.body = body
        self.xs = np.asarray(xs, dtype=np.float32)
        self.ys = np.asarray(ys, dtype=np.float32)
        self._streaks = body.streaks.sampler(self.xs, self.ys)

    # -- helpers ---------------------------------------------------------------------------------------
    def window(self, x0, x1, y0, y1):
        c0, c1 = np.searchsorted(self.xs, (x0, x1))
        r0, r1 = np.searchsorted(self.ys, (y0, y1))
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1)), self.xs[None, c0:c1], self.ys[r0:r1, None]

    def _ellipse(self, cx, cy, ax, ay, margin=1.0):
        """(window, gx, gy, q) with q the squared normalised radius; None when outside the grid."""
        if ax <= 0 or ay <= 0:
            return None
        found = self.window(cx - ax * margin, cx + ax * margin, cy - ay * margin, cy + ay * margin)
        if found is None:
            return None
        win, gx, gy = found
        return win, gx, gy, ((gx - cx) / ax) ** 2 + ((gy - cy) / ay) ** 2

    @staticmethod
    def _put(lab, win, mask, tissue, inside_only=True):
        view = lab[win]
        if inside_only:
            mask = mask & (view >= INSIDE)
        view[mask] = tissue

    def _disc(self, lab, tissue, cx, cy, ax, ay, inside_only=True):
        found = self._ellipse(cx, cy, ax, ay)
        if found:
            win, _, _, q = found
            self._put(lab, win, q <= 1, tissue, inside_only)

    def _shell(self, lab, cx, cy, ax, ay, thickness, tissue=Tissue.CORTICAL, where=None):
        """Ring of the given thickness outside the ellipse (ax, ay); `where(gx, gy)` restricts it."""
        found = self._ellipse(cx, cy, ax + thickness, ay + thickness)
        if found:
            win, gx, gy, q = found
            inner = ((gx - cx) / ax) ** 2 + ((gy - cy) / ay) ** 2 if ax > 0 and ay > 0 else np.inf
            mask = (q <= 1) & (inner > 1)
            if where is not None:
                mask &= where(gx, gy)
            self._put(lab, win, mask, tissue)

    def _ellipsoid(self, lab, tissue, centre, semi, h, margin=0.0):
        t = 1 - ((h - centre[2]) / semi[2]) ** 2
        if t > 0:
            r = np.sqrt(t)
            self._disc(lab, tissue, centre[0], centre[1], semi[0] * r + margin, semi[1] * r + margin)

    # -- the slice ---------------------------------------------------------------------------------------
    def labels(self, h: float) -> np.ndarray:
        """uint8 Tissue labels (rows, columns) on the plane at height h."""
        lab = np.zeros((len(self.ys), len(self.xs)), dtype=np.uint8)
        lv = self.body.level(h)
        self._outline(lab, lv)
        self._couch(lab, lv)
        self._thorax(lab, lv)
        self._muscles(lab, lv)
        for tissue, centre, semi in self.body.organs:
            self._ellipsoid(lab, tissue, centre, semi, h)
        self._vessels(lab, lv)
        self._head(lab, lv)
        self._spine(lab, lv)
        self._jaw(lab, lv)
        self._larynx(lab, lv)
        self._air(lab, lv)
        return lab

    def _outline(self, lab, lv):
        """Skin, subcutaneous fat, deep soft tissue with fat planes, back and chest-wall muscles."""
        found = self.window(lv.cx - lv.a, lv.cx + lv.a, lv.cy - lv.b_ant, lv.cy + lv.b_post)
        if found is None:
            return
        win, gx, gy = found
        u = np.abs(gx - lv.cx) / lv.a
        dy = gy - lv.cy
        v = np.where(dy < 0, -dy / lv.b_ant, dy / lv.b_post)
        rho = u**lv.p + v**lv.p
        view = lab[win]
        view[rho <= 1] = Tissue.FAT
        inner = rho <= (1 - self.body.fat_mm / min(lv.a, lv.b_ant)) ** lv.p
        streaks = self._streaks.plane(lv.h)[win]
        view[inner & (streaks < self.body.streak_threshold)] = Tissue.SOFT
        back = inner & (gy > lv.y_canal + 4) & (np.abs(gx - lv.cx) > 1.5) & (streaks < 1.2)
        if lv.h < 30 * self.body.neck:  # chest wall, shoulder girdle and arm muscles
            back |= inner & (rho > 0.72**lv.p) & (streaks < 1.0)
            back |= inner & (np.abs(gx - lv.cx) > 105 * self.body.lateral)
        view[back] = Tissue.MUSCLE

    def _couch(self, lab, lv):
        """Carbon-fibre couch top with foam core, and a foam headrest filling the gap under the head."""
        found = self.window(-270, 270, self.body.couch_y - 160, self.body.couch_y + 50)
        if found is None:
            return
        win, gx, gy = found
        top = self.body.couch_y + 0.0003 * gx**2
        view = lab[win]
        air = view == Tissue.AIR
        depth = gy - top
        view[air & (depth >= 0) & (depth < 44)] = Tissue.COUCH_FOAM
        view[air & (((depth >= 0) & (depth < 3)) | ((depth >= 41) & (depth < 44)))] = Tissue.COUCH
        head = air & (depth < 0) & (gy > lv.cy + 0.6 * lv.b_post) & (np.abs(gx - lv.cx) < 0.75 * lv.a)
        view[head] = Tissue.COUCH_FOAM

    def _thorax(self, lab, lv):
        body, h = self.body, lv.h
        apex = 25 * body.neck
        if h < apex:
            r = min(1.0, np.sqrt((apex - h) / 70))
            for side in (-1, 1):
                cx, cy = lv.cx + side * (40 + 30 * r) * body.lateral, lv.cy + 15 * body.depth
                ax, ay = (15 + 42 * r) * body.lateral, (25 + 50 * r) * body.depth
                found = self._ellipse(cx, cy, ax * 1.18, ay * 1.18)
                if found is None:
                    continue
                win, gx, gy, q = found
                ribs = (q > 1.06**2) & (q <= 1.16**2) & (((h + 0.35 * np.abs(gx - lv.cx)) % 22) < 8)
                self._put(lab, win, ribs & (np.abs(gx - lv.cx) > 25), Tissue.CORTICAL)
                self._put(lab, win, q <= 1, Tissue.LUNG)
        if -10 < h < 14:  # clavicles
            for side in (-1, 1):
                found = self.window(lv.cx + side * 20 - 125, lv.cx + side * 20 + 125, lv.cy - lv.b_ant, lv.cy)
                if found:
                    win, gx, gy = found
                    off = np.abs(gx - lv.cx)
                    ridge = 2 + 0.12 * (off - 20)
                    q = ((h - ridge) / 6) ** 2 + ((gy - (lv.cy - 0.62 * lv.b_ant + 0.1 * (off - 20))) / 7) ** 2
                    mask = (np.sign(gx - lv.cx) == side) & (off > 18) & (off < 140)
                    self._put(lab, win, mask & (q <= 1), Tissue.CORTICAL)
                    self._put(lab, win, mask & (q <= 0.35), Tissue.MARROW)
        if h < -8:  # manubrium / sternum
            self._disc(lab, Tissue.CORTICAL, lv.cx, lv.cy - lv.b_ant + 22, 22, 7)
            self._disc(lab, Tissue.MARROW, lv.cx, lv.cy - lv.b_ant + 22, 19, 4.5)
        if h < 10:  # scapulae
            found = self.window(lv.cx - 135, lv.cx + 135, lv.cy + 0.6 * lv.b_post, lv.cy + lv.b_post)
            if found:
                win, gx, gy = found
                off = np.abs(gx - lv.cx)
                blade = (off > 60) & (off < 130) & (np.abs(gy - (lv.cy + 0.86 * lv.b_post + 0.08 * (off - 60))) < 3)
                self._put(lab, win, blade, Tissue.CORTICAL)
        hc, radius = -30, 24 * body.lateral  # humeral heads
        if abs(h - hc) < radius:
            r = np.sqrt(radius**2 - (h - hc) ** 2)
            for side in (-1, 1):
                self._disc(lab, Tissue.CORTICAL, lv.cx + side * 150 * body.lateral, lv.cy + 20, r, r)
                self._disc(lab, Tissue.MARROW, lv.cx + side * 150 * body.lateral, lv.cy + 20, r - 2.5, r - 2.5)

    def _muscles(self, lab, lv):
        body, h, n = self.body, lv.h, self.body.neck
        if 10 * n < h < 190 * n:  # sternocleidomastoids
            t = max(0.4, np.sqrt(np.sin(np.pi * (h - 10 * n) / (180 * n))))
            x = np.interp(h, np.array([10, 60, 120, 180]) * n, [22, 42, 50, 55]) * body.lateral
            y = lv.cy + np.interp(h, np.array([10, 60, 120, 180]) * n, [-45, -25, -5, 25]) * body.depth
            for side in (-1, 1):
                self._disc(lab, Tissue.MUSCLE, lv.cx + side * x, y, 10 * t, 7 * t)
        if 20 * n < h < body.skull_base:  # longus colli / capitis
            for side in (-1, 1):
                self._disc(lab, Tissue.MUSCLE, lv.cx + side * 6, lv.y_vb - lv.vb_ap - 3, 5, 3)
        if lv.air_lat > 0.5 and h > 55 * n:  # pharyngeal constrictors
            self._disc(lab, Tissue.MUSCLE, lv.x_air, lv.y_air, lv.air_lat + 4, lv.air_ap + 4)
        if h < 60 * n:  # oesophagus
            self._disc(lab, Tissue.MUSCLE, lv.x_air, lv.y_air + lv.air_ap + 7, 8, 5)
        m = body.mandible
        if 110 * n < h < 152 * n:  # tongue, inside the mandibular arch
            found = self.window(lv.cx - m["w"], lv.cx + m["w"], m["chin_y"], lv.y_air - lv.air_ap)
            if found:
                win, gx, gy = found
                k = m["d"] / m["w"] ** 2
                taper = 1 - abs(h - 131 * n) / (22 * n)
                mask = (gy - m["chin_y"] > k * (gx - lv.cx) ** 2 + 7) & (np.abs(gx - lv.cx) < (m["w"] - 8) * taper)
                self._put(lab, win, mask & (gy < lv.y_air - lv.air_ap - 2), Tissue.MUSCLE)

    def _vessels(self, lab, lv):
        h, n = lv.h, self.body.neck
        if 15 * n < h < self.body.skull_base - 10:
            for side in (-1, 1):
                self._disc(lab, Tissue.VESSEL, lv.cx + side * (lv.vb_lat + 12), lv.y_vb - 10, 3.5, 3.5)
                self._disc(lab, Tissue.VESSEL, lv.cx + side * (lv.vb_lat + 23), lv.y_vb - 6, 6.5, 4.5)
        elif -35 < h <= 15 * n:  # brachiocephalic trunk, left carotid and subclavian
            for dx, dy in ((-15, -12), (8, -14), (18, -6)):
                self._disc(lab, Tissue.VESSEL, lv.x_air + dx, lv.y_air + dy, 5, 5)
        elif -45 <= h <= -35:  # aortic arch
            found = self.window(lv.cx - 30, lv.cx + 40, lv.cy - 35, lv.y_vb + 10)
            if found:
                win, gx, gy = found
                p0, p1 = np.array([lv.cx - 8, lv.cy - 15]), np.array([lv.cx + 22, lv.y_vb - 2])
                seg = p1 - p0
                t = np.clip(((gx - p0[0]) * seg[0] + (gy - p0[1]) * seg[1]) / (seg @ seg), 0, 1)
                dist2 = (gx - p0[0] - t * seg[0]) ** 2 + (gy - p0[1] - t * seg[1]) ** 2
                self._put(lab, win, dist2 < 13**2, Tissue.VESSEL)
        else:
            self._disc(lab, Tissue.VESSEL, lv.cx - 8, lv.cy - 15, 15, 15)  # ascending aorta
            self._disc(lab, Tissue.VESSEL, lv.cx + 22, lv.y_vb - 2, 12, 12)  # descending aorta
            self._disc(lab, Tissue.VESSEL, lv.cx - 32, lv.cy - 15, 10, 10)  # superior vena cava

    def _head(self, lab, lv):
        """Skull base, posterior and middle cranial fossae with brain, orbits, maxillary sinus walls."""
        body, h = self.body, lv.h
        sb = body.skull_base
        if h >= sb + 6:
            front = lv.cy - min(lv.b_ant - 14, 10 + 2.2 * (h - sb))
            ax, ay = lv.a - 13, lv.b_post - 13
            cyb = lv.cy
            found = self.window(lv.cx - ax - 7, lv.cx + ax + 7, front - 6, cyb + ay + 7)
            if found:
                win, gx, gy = found
                q = ((gx - lv.cx) / ax) ** 2 + ((gy - cyb) / ay) ** 2
                q_out = ((gx - lv.cx) / (ax + 6)) ** 2 + ((gy - cyb) / (ay + 6)) ** 2
                skull = (q_out <= 1) & (gy >= front - 5)
                self._put(lab, win, skull, Tissue.CORTICAL)
                self._put(lab, win, (q <= 0.8) & (gy >= front - 5) & (gy < front - 1), Tissue.MARROW)
                self._put(lab, win, (q <= 1) & (gy >= front), Tissue.BRAIN)
        if sb <= h < sb + 9:  # occipital bone around the foramen magnum, and the clivus in front of it
            self._shell(lab, lv.cx, lv.y_canal, 13, 11, 9)
            self._disc(lab, Tissue.BRAIN, lv.cx, lv.y_canal, 13, 11)
            found = self.window(lv.cx - 10, lv.cx + 10, lv.y_canal - 45, lv.y_canal - 11)
            if found:
                win, gx, gy = found
                self._put(lab, win, np.abs(gx - lv.cx) < 9, Tissue.CORTICAL)
                self._put(lab, win, np.abs(gx - lv.cx) < 6, Tissue.MARROW)
        if sb - 15 < h < sb + 12:  # mastoids
            for side in (-1, 1):
                self._ellipsoid(lab, Tissue.CORTICAL, (lv.cx + side * (lv.a - 14), lv.y_vb + 18, sb), (10, 12, 15), h)
        if sb + 3 < h < sb + 18:  # petrous ridges
            for side in (-1, 1):
                found = self.window(lv.cx - 70, lv.cx + 70, lv.y_vb - 20, lv.y_vb + 30)
                if found:
                    win, gx, gy = found
                    out = side * (gx - lv.cx)  # distance from the midline towards this side
                    ridge = np.abs(gy - (lv.y_vb - 4 + 0.45 * (out - 18))) < 5
                    self._put(lab, win, ridge & (out > 18) & (out < 58), Tissue.CORTICAL)
        face = lv.cy - lv.b_ant
        for side in (-1, 1):  # maxillary sinus walls; the air goes in with the airway
            centre = (lv.cx + side * 28 * body.lateral, face + 27, sb - 30)
            self._ellipsoid(lab, Tissue.CORTICAL, centre, (13, 15, 17), h, margin=2)
            orbit = (lv.cx + side * 33 * body.lateral, face + 30, sb + 32)
            self._ellipsoid(lab, Tissue.CORTICAL, orbit, (18, 22, 17), h, margin=2)
            self._ellipsoid(lab, Tissue.FAT, orbit, (18, 22, 17), h)
            self._ellipsoid(lab, Tissue.CSF, (orbit[0], face + 20, sb + 33), (12, 12, 12), h)  # globe
        if sb - 24 < h < sb - 14:  # zygomatic arches
            found = self.window(lv.cx - lv.a, lv.cx + lv.a, face + 25, lv.y_vb)
            if found:
                win, gx, gy = found
                off = np.abs(gx - lv.cx)
                self._put(lab, win, (off > lv.a - 14) & (off < lv.a - 9), Tissue.CORTICAL)

    def _spine(self, lab, lv):
        """Vertebral bodies with discs and endplates, posterior arches, canal and cord (below the skull)."""
        h = lv.h
        if h >= self.body.skull_base:
            return
        d = float(np.min(np.abs(self.body.discs - h)))
        x, y = lv.cx, lv.y_vb
        thoracic = h < 20 * self.body.neck
        if d < 2.5:
            self._disc(lab, Tissue.DISC, x, y, lv.vb_lat, lv.vb_ap)
        else:
            self._disc(lab, Tissue.CORTICAL, x, y, lv.vb_lat, lv.vb_ap)
            if d > 3.5:
                self._disc(lab, Tissue.MARROW, x, y, lv.vb_lat - 1.5, lv.vb_ap - 1.5)
        canal_lat, canal_ap = (8, 7) if thoracic else (11, 7)
        yc = lv.y_canal
        if d > 3:
            self._shell(lab, x, yc, canal_lat, canal_ap, 4, where=lambda gx, gy: gy > yc - 3)
            self._shell(lab, x, yc, canal_lat + 1.5, canal_ap + 1.5, 1.5, Tissue.MARROW, where=lambda gx, gy: gy > yc)
        if d > 4:
            length = 30 if thoracic else 22
            found = self.window(x - 3, x + 3, yc + canal_ap, yc + canal_ap + length)
            if found:
                win, gx, _ = found
                self._put(lab, win, np.abs(gx - x) < 2.5, Tissue.CORTICAL)
            reach = lv.vb_lat + (16 if thoracic else 11)
            found = self.window(x - reach, x + reach, y + 0.6 * lv.vb_ap - 3, y + 0.6 * lv.vb_ap + 3)
            if found:
                win, gx, _ = found
                self._put(lab, win, np.abs(gx - x) > lv.vb_lat - 1, Tissue.CORTICAL)
        self._disc(lab, Tissue.CSF, x, yc, canal_lat - 2.5, canal_ap - 1)
        self._disc(lab, Tissue.CORD, x, yc, 5.5, 4)

    def _jaw(self, lab, lv):
        """Mandible (body, teeth, rami), maxillary teeth and alveolus, hard palate."""
        m, h = self.body.mandible, lv.h
        if not (m["h_chin"] <= h <= m["h_condyle"]):
            return
        w, d, chin = m["w"], m["d"], m["chin_y"]
        k = d / w**2
        alv = m["h_alveolar"]
        found = self.window(lv.cx - w - 8, lv.cx + w + 8, chin - 8, chin + d + 20)
        if found is None:
            return
        win, gx, gy = found
        u = gx - lv.cx
        v = gy - chin
        dist = np.abs(v - k * u**2) / np.sqrt(1 + (2 * k * u) ** 2)
        frac = np.minimum(np.abs(u) / w, 1)
        if h <= alv:  # mandibular body, higher at the angle than at the chin
            bottom = m["h_chin"] + (m["h_angle"] - m["h_chin"]) * frac
            half = (9 + 4 * (1 - frac)) / 2
            body = (h >= bottom) & (v <= d) & (v >= -8)
            self._put(lab, win, body & (dist < half), Tissue.CORTICAL)
            self._put(lab, win, body & (dist < half - 1.8), Tissue.MARROW)
        elif h <= alv + 9:
            self._put(lab, win, (dist < 4) & (v <= d - 12), Tissue.TEETH)
        elif h <= alv + 18:
            upper = np.abs(v + 2 - k * 0.95 * u**2) / np.sqrt(1 + (2 * k * u) ** 2)
            self._put(lab, win, (upper < 4) & (v <= d - 12), Tissue.TEETH)
        elif h <= alv + 26:
            upper = np.abs(v + 2 - k * 0.95 * u**2) / np.sqrt(1 + (2 * k * u) ** 2)
            self._put(lab, win, (upper < 5) & (v <= d - 10), Tissue.CORTICAL)
            if h <= alv + 24:
                self._put(lab, win, (v > k * u**2) & (v < 45), Tissue.CORTICAL)
        if m["h_angle"] <= h <= m["h_condyle"]:  # rami lean back and flare out as they rise
            rise = h - m["h_angle"]
            lateral = w + 2 + 0.08 * rise
            back = v - 0.15 * rise
            ramus = (np.abs(np.abs(u) - lateral) < 3) & (back > d - 28) & (back < d + 2)
            self._put(lab, win, ramus, Tissue.CORTICAL)
            self._put(lab, win, ramus & (np.abs(np.abs(u) - lateral) < 1), Tissue.MARROW)

    def _larynx(self, lab, lv):
        """Hyoid, thyroid and cricoid cartilages, tracheal rings."""
        h, n = lv.h, self.body.neck
        x, y = lv.x_air, lv.y_air
        if 103 * n <= h < 108 * n:
            self._shell(lab, x, y + 2, 19, 13, 3, where=lambda gx, gy: gy < y + 4)
        elif 66 * n <= h < 100 * n:
            found = self.window(x - 23, x + 23, y - 20, y + 10)
            if found:
                win, gx, gy = found
                u, v = np.abs(gx - x), gy - y
                shield = (u / 19) ** 1.4 + (np.maximum(-v, 0) / 16) ** 1.4 + (np.maximum(v, 0) / 10) ** 2
                mask = (shield <= 1.25) & (shield > 1.0) & (v < 8)
                self._put(lab, win, mask, Tissue.CARTILAGE)
        elif 56 * n <= h < 66 * n:
            self._shell(lab, x, y, 9, 9.5, 3, Tissue.CARTILAGE)
        elif h < 56 * n and lv.air_lat > 0:
            self._shell(lab, x, y, lv.air_lat, lv.air_ap, 2, Tissue.CARTILAGE, where=lambda gx, gy: gy < y + 4)

    def _air(self, lab, lv):
        """Airway lumen (bronchi, trachea, larynx, pharynx), piriform sinuses, nasal cavity, sinuses."""
        body, h, n = self.body, lv.h, self.body.neck
        if h < -60:
            for side in (-1, 1):
                self._disc(lab, Tissue.AIRWAY, lv.x_air + side * 13, lv.y_air + 3, 6, 6)
        elif lv.air_lat > 0.5:
            self._disc(lab, Tissue.AIRWAY, lv.x_air, lv.y_air, lv.air_lat, lv.air_ap)
        if 80 * n < h < 98 * n:
            for side in (-1, 1):
                self._disc(lab, Tissue.AIRWAY, lv.x_air + side * (lv.air_lat + 6), lv.y_air + 3, 3, 5)
        sb, face = body.skull_base, lv.cy - lv.b_ant
        m = body.mandible
        if m["h_alveolar"] + 26 < h < sb + 8:
            front, back = face + 12, lv.y_air - max(lv.air_ap, 5) + 2
            for side in (-1, 1):
                self._disc(lab, Tissue.AIRWAY, lv.cx + side * 7, (front + back) / 2, 5, max((back - front) / 2, 1))
        for side in (-1, 1):
            centre = (lv.cx + side * 28 * body.lateral, face + 27, sb - 30)
            self._ellipsoid(lab, Tissue.AIRWAY, centre, (13, 15, 17), h)
