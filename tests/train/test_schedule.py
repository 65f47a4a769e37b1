import math

from charforge.train.schedule import warmup_cosine


def test_warmup_then_cosine_to_the_floor():
    lr, total = 1e-3, 2000
    rates = [warmup_cosine(s, total, lr, max_warmup=100, floor=0.05) for s in range(total + 10)]
    assert rates[0] == lr / 100 and rates[99] == lr  # linear warm-up over min(100, 2000 // 20) steps
    after = rates[99:total]
    assert all(a >= b for a, b in zip(after, after[1:]))  # never rises after the warm-up
    assert (
        math.isclose(rates[total], 0.05 * lr) and rates[-1] == rates[total]
    )  # held at the floor past the end
    assert warmup_cosine(0, 10, lr, max_warmup=200, floor=0.02) == lr  # short runs: a one-step warm-up
