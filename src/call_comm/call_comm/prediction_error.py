"""
E = ||X_hat - X|| over the last K steps (paper Algorithm 1, section 3.3).

The world model owns the predictions; this helper only keeps the last K (predicted, realised)
pairs of latents and intentions and returns the norm of their difference, so the world model
and offline tools compute E the same way the gate expects it.
"""
from collections import deque
from typing import Deque, Tuple

import numpy as np


class PredictionErrorWindow:
    """Sliding window of the last K predicted vs realised model states X = {z, w}."""

    def __init__(self, horizon_k: int) -> None:
        """Keep at most `horizon_k` pairs; K must be positive."""
        if horizon_k < 1:
            raise ValueError(f'K must be >= 1, got {horizon_k}')
        self.horizon_k = int(horizon_k)
        self._pairs: Deque[Tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.horizon_k)

    def push(self, predicted: np.ndarray, realised: np.ndarray) -> float:
        """Add one step's flattened X_hat and X (same shape) and return the current E."""
        predicted = np.asarray(predicted, dtype=np.float64).ravel()
        realised = np.asarray(realised, dtype=np.float64).ravel()
        if predicted.shape != realised.shape:
            raise ValueError(f'shape mismatch {predicted.shape} vs {realised.shape}')
        self._pairs.append((predicted, realised))
        return self.error()

    def error(self) -> float:
        """Frobenius norm of X_hat - X stacked over the window; nan while empty."""
        if not self._pairs:
            return float('nan')
        squared = sum(float(np.sum((p - r) ** 2)) for p, r in self._pairs)
        return float(np.sqrt(squared))
