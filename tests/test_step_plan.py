"""The training loop's per-step decision (validate? save? stop?) as a pure function."""
from __future__ import annotations

import pytest

from imlbench.benchmark.loop import StepPlan, plan_step

BASE = dict(steps=10, val_every=0, save_every=0, final_stage=True, has_validation=True,
            writes=True, stop_after=None)


def plan(step, global_step=None, **overrides):
    return plan_step(step, step if global_step is None else global_step, **{**BASE, **overrides})


def test_a_middle_step_does_nothing_and_the_last_one_validates_saves_and_finishes():
    assert plan(3) == StepPlan(validate=False, save=False, finished=False, stop=False)
    assert plan(10) == StepPlan(validate=True, save=True, finished=True, stop=False)


def test_val_every_validates_and_saves_on_its_multiples_only():
    assert [s for s in range(1, 11) if plan(s, val_every=4).validate] == [4, 8, 10]
    assert [s for s in range(1, 11) if plan(s, val_every=4).save] == [4, 8, 10]


def test_save_every_saves_without_validating():
    plans = {s: plan(s, save_every=3) for s in range(1, 11)}
    assert [s for s, p in plans.items() if p.save] == [3, 6, 9, 10]
    assert [s for s, p in plans.items() if p.validate] == [10]


def test_an_earlier_stage_ends_saved_but_neither_validated_nor_finished():
    assert plan(10, final_stage=False) == StepPlan(validate=False, save=True, finished=False,
                                                   stop=False)
    assert plan(4, final_stage=False, val_every=4).validate  # periodic validation still runs


def test_stop_after_counts_global_steps_and_always_saves():
    assert plan(2, global_step=12, stop_after=12) == StepPlan(False, True, False, True)
    assert plan(2, global_step=11, stop_after=12).stop is False
    assert plan(10, stop_after=10) == StepPlan(True, True, True, True)  # stopped at the very end


@pytest.mark.parametrize("step", [4, 10])
def test_other_ranks_never_validate_or_save_but_stop_with_rank_0(step):
    p = plan(step, val_every=4, save_every=2, writes=False, stop_after=step)
    assert (p.validate, p.save, p.stop) == (False, False, True)


def test_without_a_validation_set_nothing_validates():
    assert not any(plan(s, val_every=2, has_validation=False).validate for s in range(1, 11))
    assert plan(10, has_validation=False).save
