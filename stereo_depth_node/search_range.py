"""What the disparities a matcher searches mean in metres for one calibration: the nearest and
the farthest depth it can report, and what a user must be told where part of the scene, or all
of it, cannot be measured."""
from __future__ import annotations

from dataclasses import dataclass

README_SECTION = 'README, "Choosing max_disparity"'


@dataclass(frozen=True)
class SearchRange:
    focal_baseline: float  # f B = P_l[3] - P_r[3] (px m): Z = f B / d
    offset: float          # cx_l - cx_r (px): a disparity is the pixel shift less this
    largest_shift: float   # the largest pixel shift searched, in input pixels
    max_disparity: int     # as configured, at the matching size
    input_scale: float

    @property
    def largest_disparity(self) -> float:
        return self.largest_shift - self.offset

    @property
    def nearest(self) -> float | None:
        """Depth of the largest disparity searched; None where no disparity above 0 is searched."""
        largest = self.largest_disparity
        return self.focal_baseline / largest if largest > 0 else None

    @property
    def farthest(self) -> float | None:
        """Depth of the smallest disparity searched, that of a pixel shift of 0, where it is above 0
        (the right principal point lies right of the left one); None: the range reaches infinity.
        A farther surface would need a shift below 0, which no matcher searches."""
        return self.focal_baseline / -self.offset if self.offset < 0 else None

    def note(self, min_depth: float, max_depth: float) -> tuple[str, bool]:
        """The line that says which depths the range covers, and whether it is a warning: it is
        where the range can give no depth within [min_depth, max_depth] at all."""
        searched = f"max_disparity {self.max_disparity} at input_scale {self.input_scale:g}"
        nearest, farthest = self.nearest, self.farthest
        if nearest is None:
            return (f"search range gives no depth: pixel shifts up to {self.largest_shift:.3g} px "
                    f"are searched ({searched}), but the left principal point lies "
                    f"{self.offset:g} px right of the right one (cx_l - cx_r), so no disparity "
                    f"found is above 0 and depth and points2 hold NaN only: raise max_disparity "
                    f"({README_SECTION})", True)
        # A far limit beyond max_depth costs nothing: what it reports nearer is still beyond.
        limited = farthest is not None and farthest < max_depth
        text = (f"search range: depths from {nearest:.3g} m "
                f"{f'to {farthest:.3g} m' if limited else 'on'} ({searched}); a surface nearer "
                f"than that is matched inside the range and reported farther away (by a network "
                f"all of it, by sgbm about half, the rest invalid): raise max_disparity to cover "
                f"the nearest distance that matters ({README_SECTION})")
        if limited:
            text += (f". A surface farther than {farthest:.3g} m is matched inside the range too "
                     f"and reported nearer (by sgbm partly invalid): the right principal point "
                     f"lies {-self.offset:g} px right of the left one (P[2]), so its pixel shift "
                     f"would be below 0, where no matcher searches")
        if nearest > max_depth:
            return (text + f". Every depth the range can give lies beyond max_depth "
                    f"({max_depth:g} m), so depth and points2 hold NaN only: is the right "
                    f"camera_info's P[3] (-fx * baseline) in metres?", True)
        if farthest is not None and farthest < min_depth:
            return (text + f". Every depth the range can give lies below min_depth "
                    f"({min_depth:g} m), so depth and points2 hold NaN only", True)
        return text, False
