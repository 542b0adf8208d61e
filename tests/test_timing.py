"Timing a fit: seconds per epoch, milliseconds per part of a step, peak memory, a fresh process per measurement."
import pytest
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.fast import FAST
from ajtfb_collab.timing import EpochTimer, StepTimes, peak_rss_mb, in_process


def test_step_parts_add_up_within_the_epochs():
    dls = FAST.dls(synthetic_ratings(100, 40, 3000), item_name='movie')
    learn, timer, parts = FAST.learner(dls), EpochTimer(), StepTimes()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, FAST.lr, cbs=[timer, parts])
    per = parts.per_step()
    assert len(timer.seconds) == 2 and parts.steps == 2 * len(dls.train) and all(v >= 0 for v in per.values())
    assert sum(per.values()) * parts.steps / 1000 <= sum(timer.seconds)


def test_in_process_returns_the_dict_or_the_error():
    assert in_process("dict(two=1 + 1)", 'timing') == {'two': 2}
    with pytest.raises(RuntimeError, match='ZeroDivisionError'): in_process("1 / 0", 'timing')
    assert peak_rss_mb() > in_process("dict(mb=peak_rss_mb())", 'timing')['mb'] > 10
