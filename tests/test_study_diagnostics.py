"""The study's diagnostics: the student's hazard recall on bench, collisions by scenario type, the BEV
gradient summary and risk-to-infraction lead times (study merge)."""

from __future__ import annotations

import numpy as np
import pytest

from riskdistill.evaluation.risk_metrics import compute_student_hazard_recall


def test_student_hazard_recall_counts_teacher_regions_found() -> None:
    teacher = np.zeros((3, 1, 10, 10))
    teacher[0, 0, 1:3, 1:3] = 0.8  # hazard A
    teacher[0, 0, 6:9, 6] = 0.6  # hazard B
    teacher[0, 0, 5, 5] = 0.7  # touches B diagonally: the same region (8-neighbourhood)
    teacher[1, 0, 4, 4] = 0.9  # hazard C
    teacher[2, 0] = 0.3  # no hazard: below the threshold everywhere
    pred = np.zeros_like(teacher)
    pred[0, 0, 2, 2] = 0.55  # finds A
    pred[0, 0, 0, 9] = 0.99  # hot where no hazard is: no credit
    pred[1, 0, 4, 4] = 0.49  # just misses C
    pred[2, 0] = 1.0
    assert compute_student_hazard_recall(pred, teacher) == (1, 3)
    assert compute_student_hazard_recall(teacher, teacher) == (3, 3)
    assert compute_student_hazard_recall(pred[2], teacher[2]) == (0, 0)
    with pytest.raises(ValueError, match="differ in shape"):
        compute_student_hazard_recall(pred[:2], teacher)
