"""Lab 3 submissions that the real-lab grading tests paste into the released notebook.

LIBRARY_ANSWERS answers every graded cell with the closest function left in ``tradeoffs``: the package
keeps mechanisms only (the textbook noise model ``uniform_label_noise``, the learning-curve trainer, the
accuracy surface, cleanlab's scores and cleanlab's own rule), and no injector with an exact rate, no
break-even reading, no cleaning rule and no budget arithmetic. It must earn at most 10% of the
autograded points. PARTIAL is Part 4 without the cap and with an unstable sort: right on the core cases
(distinct scores, ``n_issues`` below the cap, the learner's own cleanlab scores), wrong on the edge cases
(the cap, ties).
"""

LIBRARY_ANSWERS: dict[str, str] = {
    # The textbook model: each label redrawn with probability `rate` from all classes (count not exact,
    # some redraws keep the true class).
    "q1_inject_symmetric_noise": '''
from tradeoffs import noise as nz

def inject_symmetric_noise(y, rate, n_classes, seed=0):
    return nz.uniform_label_noise(y, rate, n_classes=n_classes, seed=seed)
''',
    # The same model restricted to each pair: a redraw between the two classes of the pair.
    "q2_inject_pair_noise": '''
from tradeoffs import noise as nz

def inject_pair_noise(y, rate, pairs, seed=0):
    y = np.asarray(y)
    noisy = y.copy()
    for a, b in pairs:
        rows = np.isin(y, [a, b])
        if rows.any():
            redrawn, _ = nz.uniform_label_noise((y[rows] == b).astype(int), rate, n_classes=2, seed=seed)
            noisy[rows] = np.where(redrawn == 1, b, a)
    return noisy, noisy != y
''',
    # The source of the library's former break_even_rate, run on an AccuracySurface built from the table.
    "q3_break_even_rate": '''
from tradeoffs import curves

def break_even_rate(summary, small, large):
    accuracy = curves.AccuracySurface.from_grid(summary.rename(columns={"mean": "accuracy"})[["size", "rate", "accuracy"]])
    top = float(accuracy.rates[-1])
    clean = accuracy(small, 0.0)
    for rate in np.linspace(0.0, top, 401):
        if accuracy(large, float(rate)) <= clean:
            return float(rate)
    return None
''',
    # cleanlab's own rule, fed the quality scores as the probability of the given label.
    "q4_choose_rows_to_remove": '''
from tradeoffs import noise as nz

def choose_rows_to_remove(quality, n_issues, max_share=0.5):
    q = np.clip(np.asarray(quality, dtype=float), 0.0, 1.0)
    labels = np.zeros(len(q), dtype=int)
    labels[1::2] = 1
    proba = np.where(labels[:, None] == np.arange(2), q[:, None], 1 - q[:, None])
    return nz.find_label_issues(labels, proba)
''',
    # Read straight off the surface: cleaning taken to fix everything, collecting at the new labels' rate.
    "q5_marginal_value": '''
def marginal_value(accuracy, n, rate, reviewed_per_hour, review_precision, collected_per_day, new_label_rate,
                   hours_per_day=8.0):
    now = accuracy(n, rate)
    return float(accuracy(n, 0.0) - now), float((accuracy(n + collected_per_day, new_label_rate) - now) / hours_per_day)
''',
}

PARTIAL_PART = "q4"
PARTIAL: dict[str, str] = {
    "q4_choose_rows_to_remove": '''
def choose_rows_to_remove(quality, n_issues, max_share=0.5):
    quality = np.asarray(quality, dtype=float)
    remove = np.zeros(len(quality), dtype=bool)
    remove[np.argsort(quality)[:n_issues]] = True
    return remove
''',
}
