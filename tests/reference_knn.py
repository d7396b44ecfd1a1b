"""An independent brute-force leave-one-out k-NN accuracy: plain Python loops over NumPy float64 pairs.

No torch, no blocks, no top-k: for each probe every other probe's cosine similarity, one pair at a
time, a full sort by (similarity descending, index ascending), and a vote counted by hand whose
ties go to the tied class met first in that order. It states the package's definition directly.
:func:`tied_representations` builds test data full of exact ties.
"""

from __future__ import annotations

import numpy as np
import torch


def reference_knn_accuracy(representations, labels, k: int) -> float:
    x = np.asarray(representations, dtype=np.float64)
    y = [int(label) for label in np.asarray(labels).tolist()]
    norms = [float(np.sqrt(np.dot(row, row))) for row in x]
    unit = [row / norm if norm > 0 else row * 0.0 for row, norm in zip(x, norms)]
    correct = 0
    for i in range(len(x)):
        others = [(-float(np.dot(unit[i], unit[j])), j) for j in range(len(x)) if j != i]
        nearest = [j for _, j in sorted(others)[:k]]
        votes: dict[int, int] = {}
        for j in nearest:
            votes[y[j]] = votes.get(y[j], 0) + 1
        most = max(votes.values())
        predicted = next(y[j] for j in nearest if votes[y[j]] == most)
        correct += predicted == y[i]
    return correct / len(x)


def tied_representations(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows drawn from 6 patterns with four entries of +-1 (every cosine a multiple of 1/4, exactly), scaled by 1-3.

    Many rows are the same direction (exact similarity ties at every rank), every seventh is zero
    (similarity 0 to everything), and with 3 classes many votes tie.
    """
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.zeros(6, 8, dtype=torch.float64)
    for pattern in patterns:
        places = torch.randperm(8, generator=generator)[:4]
        pattern[places] = torch.where(torch.rand(4, generator=generator) < 0.5, -1.0, 1.0).double()
    rows = patterns[torch.randint(0, 6, (n,), generator=generator)]
    rows = rows * torch.randint(1, 4, (n, 1), generator=generator).double()
    rows[::7] = 0
    return rows, torch.randint(0, 3, (n,), generator=generator)
