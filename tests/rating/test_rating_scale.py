import numpy as np
import pytest
from pydantic import ValidationError
from scipy.special import expit

from rating.scale import Grade, MasterScale, PointsScale


def test_default_scale_has_contiguous_increasing_bands_covering_floor_to_one():
    # Given the default master scale
    scale = MasterScale()
    # Then it has at least 7 non-default grades plus D, contiguous from the floor to 1
    assert scale.n_grades >= 7
    assert scale.names[-1] == "D"
    assert scale.grades[0].lower == scale.pd_floor == 0.0003
    assert scale.grades[-1].upper == 1.0
    for prev, nxt in zip(scale.grades, scale.grades[1:], strict=False):
        assert prev.upper == nxt.lower
        assert prev.lower < prev.upper


def test_grade_of_is_monotone_higher_pd_never_better_grade():
    # Given many PDs over the whole range, including band edges
    scale = MasterScale()
    rng = np.random.default_rng(0)
    edges = np.array([g.lower for g in scale.grades] + [1.0])
    pds = np.sort(np.concatenate([rng.uniform(0, 1, 500), 10 ** rng.uniform(-6, 0, 500), edges]))
    # When graded
    index = scale.grade_index(pds)
    # Then the grade index never decreases as PD increases, and D is never assigned from a PD
    assert np.all(np.diff(index) >= 0)
    assert index.max() == scale.n_grades - 1
    assert "D" not in set(scale.grade_of(pds))


def test_band_edges_belong_to_the_upper_band_and_pd_below_floor_to_the_best():
    scale = MasterScale()
    # Given the lower edge of each band, [lower, upper)
    lowers = np.array([g.lower for g in scale.grades])
    # Then it maps to that band
    assert list(scale.grade_of(lowers)) == [g.name for g in scale.grades]
    # And a PD below the floor is floored into the best grade
    assert scale.grade_of(np.array([0.0, 1e-9]))[0] == scale.grades[0].name
    assert scale.floor_pd(np.array([0.0]))[0] == scale.pd_floor


def test_log_odds_boundaries_agree_with_grade_of():
    scale = MasterScale()
    boundaries = scale.log_odds_boundaries()
    # Given log-odds just either side of each boundary
    below, above = expit(boundaries - 1e-9), expit(boundaries + 1e-9)
    # Then the grades differ by exactly one notch
    assert np.array_equal(scale.grade_index(above) - scale.grade_index(below), np.ones(len(below)))


@pytest.mark.parametrize("pd", [np.nan, -0.1, 1.5])
def test_invalid_pd_is_rejected_with_position(pd):
    with pytest.raises(ValueError, match="position 1"):
        MasterScale().grade_of(np.array([0.1, pd]))


def _grades(bands):
    return tuple(
        Grade(name=str(i), label=f"L{i}", lower=lo, upper=up) for i, (lo, up) in enumerate(bands)
    )


def test_gap_between_bands_is_rejected_naming_both_grades():
    bands = [
        (0.0003, 0.001),
        (0.002, 0.01),
        (0.01, 0.02),
        (0.02, 0.05),
        (0.05, 0.1),
        (0.1, 0.2),
        (0.2, 1.0),
    ]
    with pytest.raises(
        ValidationError, match=r"not contiguous: grade '0' ends at 0\.001 but grade '1'"
    ):
        MasterScale(grades=_grades(bands))


def test_too_few_grades_and_wrong_floor_are_rejected():
    with pytest.raises(ValidationError, match="at least 7"):
        MasterScale(grades=_grades([(0.0003, 0.1), (0.1, 1.0)]))
    bands = [
        (0.001, 0.002),
        (0.002, 0.01),
        (0.01, 0.02),
        (0.02, 0.05),
        (0.05, 0.1),
        (0.1, 0.2),
        (0.2, 1.0),
    ]
    with pytest.raises(ValidationError, match="not at the PD floor"):
        MasterScale(grades=_grades(bands))


def test_points_scale_follows_pdo_convention():
    # Given the standard 600 points at 50:1 good:bad odds, 20 points to double the odds
    points = PointsScale(base_points=600, base_odds=50, pdo=20)
    # Then odds 50:1 score 600 and odds 100:1 score 620; riskier means fewer points
    assert points.points(np.array([np.log(1 / 50)]))[0] == 600
    assert points.points(np.array([np.log(1 / 100)]))[0] == 620
    assert points.points(np.array([0.0]))[0] < 600
