"""The TRIPOD+AI / CLAIM items as data: published numbering, and an answer or the author's
blank for each (the filling from a run's files: test_checklist_fill.py)."""

from __future__ import annotations

from deepcovid.results.checklist import CLAIM_ITEMS, ITEMS, TRIPOD_ITEMS
from deepcovid.results.checklist_fill import ANSWERS


def test_items_are_data_with_published_numbers_and_known_answers() -> None:
    assert len(CLAIM_ITEMS) == 44
    assert [i.number for i in CLAIM_ITEMS] == [str(n) for n in range(1, 45)]
    tripod = [i.number for i in TRIPOD_ITEMS]
    assert tripod[:4] == ["1", "2", "3a", "3b"] and tripod[-1] == "27c"
    assert len(tripod) == len(set(tripod)) == 52  # 27 items, 52 sub-items with their parts
    assert {a for item in ITEMS for a in item.answers} <= set(ANSWERS)
