"""
Metric definitions of the paper's tables, on plain arrays (one function per metric).

Prediction (Table 1): a decoded BEV prediction is thresholded at 0.5 into binary masks and
compared with the BEV the agent really observed k steps later.
- per-pixel accuracy: fraction of equal pixels over all channels and pixels;
- vehicle IoU: intersection over union of the union of the vehicle channels (seen + shared
  vehicles; the ego box never moves in its own frame and is left out). Pixel accuracy alone is
  inflated by empty background (most pixels are empty in every frame), hence both.
Driving (Table 6), per CALL vehicle and step:
- collision rate: percentage of vehicle-steps in collision;
- average TTC: mean over vehicle-steps of min(TTC, cap) (TTC is infinite without a conflicting
  vehicle; the cap makes the mean finite and is reported with it), and the mean of finite TTCs;
- success rate: percentage of trips that reached their destination among trips that ended by
  themselves (reached, collision, off road, time out); trips cut short because the episode of
  the fleet ended for another vehicle are excluded and counted separately.
Learning curves: TensorBoard-style debiased exponential moving average (weight 0.72, the
paper's wandb smoothing) with the EMA of squared deviations as the shaded spread.
"""
from typing import Iterable, Sequence

from call_sim import driving_metrics
import numpy as np

OUTCOMES = driving_metrics.OUTCOMES


def pixel_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of equal pixels of two boolean masks of the same shape (..., C, H, W)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f'shape mismatch {predicted.shape} vs {truth.shape}')
    return float(np.mean(predicted == truth))


def vehicle_iou(predicted: np.ndarray, truth: np.ndarray, channels: Sequence[int]) -> float:
    """Return the IoU of the union of `channels` (pooled over leading dims); nan if empty."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f'shape mismatch {predicted.shape} vs {truth.shape}')
    pred_v = predicted[..., list(channels), :, :].any(axis=-3)
    true_v = truth[..., list(channels), :, :].any(axis=-3)
    union = int(np.count_nonzero(pred_v | true_v))
    if union == 0:
        return float('nan')
    return int(np.count_nonzero(pred_v & true_v)) / union


def collision_rate(collided: Iterable[bool]) -> float:
    """Percentage of vehicle-steps in collision (nan without steps)."""
    values = np.asarray(list(collided), dtype=bool)
    return float(100.0 * values.mean()) if values.size else float('nan')


def average_ttc(ttc: Iterable[float], cap: float) -> float:
    """Mean over vehicle-steps of min(TTC, cap) [s] (nan without steps)."""
    values = np.asarray(list(ttc), dtype=np.float64)
    if values.size == 0:
        return float('nan')
    return float(np.minimum(values, cap).mean())


def average_finite_ttc(ttc: Iterable[float]) -> float:
    """Mean TTC over the vehicle-steps that had a conflicting, approaching vehicle."""
    values = np.asarray(list(ttc), dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float('nan')


def success_rate(outcomes: Iterable[str]) -> float:
    """Percentage of reached trips among trips that ended by themselves (not cut short)."""
    return 100.0 * driving_metrics.success_rate(outcomes)


def ema_smooth(values: Sequence[float], weight: float = 0.72
               ) -> tuple[np.ndarray, np.ndarray]:
    """
    Return the debiased EMA (TensorBoard, wandb) and its spread sqrt(EMA of sq. dev.).

    s_t = w s_{t-1} + (1 - w) x_t from s_0 = 0, divided by (1 - w^t) (debiasing); the spread
    uses the same recursion on (x_t - smoothed_t)^2.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f'EMA weight must be in [0, 1), got {weight}')
    x = np.asarray(values, dtype=np.float64)
    smoothed, spread = np.empty_like(x), np.empty_like(x)
    mean_acc, var_acc = 0.0, 0.0
    for t, value in enumerate(x, start=1):
        debias = 1.0 - weight ** t
        mean_acc = weight * mean_acc + (1.0 - weight) * value
        smoothed[t - 1] = mean_acc / debias
        var_acc = weight * var_acc + (1.0 - weight) * (value - smoothed[t - 1]) ** 2
        spread[t - 1] = np.sqrt(var_acc / debias)
    return smoothed, spread
