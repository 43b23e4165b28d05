"""scikit-learn's bundled real datasets behind tradeoffs.data: shapes, labels, fixed stratified splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tradeoffs import data

# sha256 (first 16 hex digits) of each part's X (little-endian float64) followed by y (int64).
# They pin the exact split: a change of seed, of the split code, or of scikit-learn's copy of the data
# changes them. Update only on purpose, together with the datasheet.
FINGERPRINTS = {
    "breast_cancer": {"train": "f2e02121233799a9", "val": "49e9a46e421d120a", "test": "cb7be596820a151d"},
    "digits": {"train": "b203a1016bbe2574", "val": "70963d25146edb5d", "test": "7895279ace3db7a9"},
}
LOADERS = {"breast_cancer": data.load_breast_cancer_split, "digits": data.load_digits_split}


def _fingerprint(X, y) -> str:
    blob = np.ascontiguousarray(X, dtype="<f8").tobytes() + np.ascontiguousarray(y, dtype="<i8").tobytes()
    return hashlib.sha256(blob).hexdigest()[:16]


@pytest.mark.parametrize("name", LOADERS)
def test_split_is_fixed_and_reproducible(name):
    a, b = LOADERS[name](), LOADERS[name]()
    for part in ("train", "val", "test"):
        X, y = getattr(a, f"X_{part}"), getattr(a, f"y_{part}")
        assert X.dtype == np.float64 and y.dtype == np.int64
        np.testing.assert_array_equal(X, getattr(b, f"X_{part}"))
        assert _fingerprint(X, y) == FINGERPRINTS[name][part], f"{name} {part} split changed"


def test_breast_cancer_shape_and_label_convention():
    s = data.load_breast_cancer_split()
    assert s.sizes() == {"train": 312, "val": 114, "test": 143}
    assert s.X_train.shape[1] == len(s.feature_names) == 30
    assert s.target_names == ["benign", "malignant"]
    y = np.concatenate([s.y_train, s.y_val, s.y_test])
    assert np.bincount(y).tolist() == [357, 212]  # 1 = malignant: the kit's convention, not sklearn's


def test_digits_shape_and_values():
    s = data.load_digits_split()
    assert s.sizes() == {"train": 987, "val": 360, "test": 450}
    assert s.X_train.shape[1] == 64 and s.feature_names[9] == "pixel_1_1"
    X = np.concatenate([s.X_train, s.X_val, s.X_test])
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert s.target_names == [str(d) for d in range(10)]


@pytest.mark.parametrize("name", LOADERS)
def test_split_is_stratified_and_a_partition(name):
    from sklearn import datasets as skd

    raw = {"breast_cancer": skd.load_breast_cancer, "digits": skd.load_digits}[name]()
    s = LOADERS[name]()
    X = np.concatenate([s.X_train, s.X_val, s.X_test])
    # the three parts hold every original row exactly once (compare sorted rows)
    np.testing.assert_array_equal(np.sort(X.view([("", X.dtype)] * X.shape[1]), axis=0),
                                  np.sort(raw.data.astype(np.float64).view([("", X.dtype)] * X.shape[1]), axis=0))
    y = np.concatenate([s.y_train, s.y_val, s.y_test])
    overall = np.bincount(y) / len(y)
    for part in ("train", "val", "test"):
        yp = getattr(s, f"y_{part}")
        counts = np.bincount(yp, minlength=len(overall))
        assert np.all(np.abs(counts - overall * len(yp)) <= 1.5), (part, counts)


def test_other_sizes_and_seeds():
    s = data.load_digits_split(val_size=0.1, test_size=0.3, seed=1)
    assert sum(s.sizes().values()) == 1797 and abs(s.sizes()["test"] - 0.3 * 1797) < 1
    assert _fingerprint(s.X_test, s.y_test) != FINGERPRINTS["digits"]["test"]
    with pytest.raises(ValueError, match="sum below 1"):
        data.load_breast_cancer_split(val_size=0.5, test_size=0.5)


def test_frame_has_features_and_target():
    s = data.load_breast_cancer_split()
    df = s.frame("test")
    assert list(df.columns) == s.feature_names + ["target"]
    assert len(df) == 143 and df["target"].dtype == np.int64
    with pytest.raises(ValueError, match="part must be"):
        s.frame("validation")


@pytest.mark.parametrize("name,floor", [("breast_cancer", 0.95), ("digits", 0.95)])
def test_linear_baseline_is_strong(name, floor):
    """The datasheet says standardised logistic regression scores ~97% on both test splits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    s = LOADERS[name]()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(s.X_train, s.y_train)
    assert model.score(s.X_test, s.y_test) >= floor
