"""PSI against values worked out by hand (the arithmetic is in each comment)."""

from __future__ import annotations

import math

import pytest

from model.drift_reference import PSI_FLOOR, bin_index, histogram, psi


def test_identical_distributions_have_zero_psi() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    # Only proportions count: 10/30/60 is the same distribution as 1/3/6.
    assert psi([10, 30, 60], [1, 3, 6]) == pytest.approx(0.0, abs=1e-15)


def test_psi_of_a_mirrored_two_bin_split_is_ln3() -> None:
    # e = (1/4, 3/4), a = (3/4, 1/4):
    # (3/4 - 1/4) ln(3) + (1/4 - 3/4) ln(1/3) = 1/2 ln 3 + 1/2 ln 3 = ln 3 = 1.0986...
    assert psi([1, 3], [3, 1]) == pytest.approx(1.0986122886681098, rel=1e-12)


def test_psi_of_four_bins_by_hand() -> None:
    # e = (.25, .25, .25, .25), a = (.1, .2, .3, .4):
    #   (.1-.25) ln(.1/.25) = -.15 * -0.9162907 = 0.1374436
    #   (.2-.25) ln(.2/.25) = -.05 * -0.2231436 = 0.0111572
    #   (.3-.25) ln(.3/.25) =  .05 *  0.1823216 = 0.0091161
    #   (.4-.25) ln(.4/.25) =  .15 *  0.4700036 = 0.0705005
    #   sum                                     = 0.2282174
    assert psi([25, 25, 25, 25], [10, 20, 30, 40]) == pytest.approx(0.2282174, abs=1e-7)


def test_psi_is_symmetric() -> None:
    assert psi([25, 25, 25, 25], [10, 20, 30, 40]) == pytest.approx(
        psi([10, 20, 30, 40], [25, 25, 25, 25]), rel=1e-12
    )


def test_an_empty_expected_bin_is_floored_not_infinite() -> None:
    # e = (0, 1) floored to (1e-4, 1); a = (.5, .5):
    #   (.5 - 1e-4) ln(.5 / 1e-4) = 0.4999 * ln 5000 = 0.4999 * 8.5171932 = 4.2577449
    #   (.5 - 1)    ln(.5 / 1)    = -.5 * -0.6931472                       = 0.3465736
    #   sum                                                               = 4.6043185
    assert PSI_FLOOR == 1e-4
    assert psi([0, 100], [50, 50]) == pytest.approx(4.6043185, abs=1e-7)


def test_an_empty_actual_bin_is_floored_too() -> None:
    # Same numbers with the roles swapped; PSI is symmetric, so the same 4.6043185.
    assert psi([50, 50], [0, 100]) == pytest.approx(4.6043185, abs=1e-7)


def test_a_bin_empty_on_both_sides_adds_nothing() -> None:
    assert psi([0, 10, 10], [0, 5, 5]) == 0.0
    assert psi([0, 1, 3], [0, 3, 1]) == pytest.approx(math.log(3), rel=1e-12)


def test_no_observations_give_zero_and_mismatched_bins_are_rejected() -> None:
    assert psi([0, 0], [1, 2]) == 0.0
    assert psi([1, 2], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="same number of bins"):
        psi([1, 2, 3], [1, 2])


def test_bins_are_half_open_and_the_last_one_is_closed() -> None:
    edges = [0.0, 0.5, 1.0]
    assert [bin_index(v, edges) for v in (0.0, 0.49, 0.5, 0.99, 1.0)] == [0, 0, 1, 1, 1]
    assert histogram([0.0, 0.25, 0.5, 1.0], edges) == [2, 2]
