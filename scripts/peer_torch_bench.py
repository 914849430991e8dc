#!/usr/bin/env python3
"""PyTorch peer for `make bench`: local-training throughput of the 2NN and CNN on CPU.

The same measurement as shared/peer/torch_train_bench.py, on this repository's data/
(written by scripts/fetch_data.py, byte-identical to the peer harness's files).

For each thread count T (torch.set_num_threads(T)), model M and batch size B, a fresh
model (torch.manual_seed(0)) is trained with plain SGD (lr 0.05) for --epochs epochs
(default 5) over the 4,000 rows of DATA/mnist5k-train.csv:
  epoch 1      = warm-up (timed, reported, not used for the throughput figure)
  epochs 2-4   = timed; throughput = n_train / median(epoch seconds)   ("median of 3")
  epochs 5..   = trained too, so the model has seen --epochs epochs;
then test accuracy on DATA/mnist5k-test.csv (the central-training baseline).
Only the training loop is timed (forward, loss, backward, SGD step, batch slicing);
data are pre-loaded float32 tensors in [0,1]; no DataLoader.

Models and training loop: imported from ../shared/peer/flower_app/peerfl/common.py
(relative to the repository root) when that file exists, so both harnesses run the
very same code; otherwise a built-in copy of the needed definitions below is used.
The JSON's env.peer_code says which.

Output: --out FILE, JSON {"env": {...}, "rows": [{"threads", "model", "params", "batch",
"samples_per_s", "epoch_s_median", "warmup_epoch_s", "epoch_s_all", "epochs", "test_acc",
"test_loss", "loadavg1_before", "loadavg1_after"}, ...]}, the shape of torch_train_bench.json.
Numbers are only comparable on an otherwise idle machine.

Usage:
  .venv-peer/bin/python scripts/peer_torch_bench.py                  # full grid, ~5 min when idle
  .venv-peer/bin/python scripts/peer_torch_bench.py --threads 1 --models 2NN --batch-sizes 10
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_APP = os.path.join(os.path.dirname(REPO), "shared", "peer", "flower_app")
SHARED_COMMON = os.path.join(SHARED_APP, "peerfl", "common.py")


def import_torch():
    try:
        import numpy
        import torch
    except ImportError as e:  # depends on the environment
        sys.exit(f"error: {e}. This script needs torch and numpy: run `make peer-deps` and use "
                 f".venv-peer/bin/python (or set PEER_PYTHON for `make bench`).")
    return numpy, torch


# ---------------------------------------------------------------------------
# Built-in copy of shared/peer/flower_app/peerfl/common.py (the parts used here), for
# checkouts without shared/. Keep in step with that file: same models, same
# initialisation order, same loop.

def builtin_code():
    """(load_csv, make_model, n_params, train_epochs, evaluate) defined locally."""
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def _load_csv(path):
        """Header-less CSV (label, pixels...) -> (X float32 in [0,1], y int64) tensors."""
        a = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
        if a.size == 0:
            return torch.zeros((0, 784)), torch.zeros((0,), dtype=torch.int64)
        y = torch.from_numpy(a[:, 0].copy())
        # mnist5k rows have 784 pixels in 0-255; digits rows have 64 in 0-16.
        scale = 255.0 if a.shape[1] == 785 else 16.0
        X = torch.from_numpy(a[:, 1:].astype(np.float32) / scale)
        return X, y

    class _TwoNN(nn.Module):
        """McMahan et al. 2NN: 784-200-200-10, ReLU. 199,210 parameters."""

        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 200)
            self.fc2 = nn.Linear(200, 200)
            self.fc3 = nn.Linear(200, 10)

        def forward(self, x):
            x = x.view(-1, 784)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    class _CNN(nn.Module):
        """McMahan et al. CNN: 5x5x32 conv (pad 2) - pool - 5x5x64 conv (pad 2) - pool - 512 - 10.
        1,663,370 parameters."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
            self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
            self.fc1 = nn.Linear(7 * 7 * 64, 512)
            self.fc2 = nn.Linear(512, 10)

        def forward(self, x):
            x = x.view(-1, 1, 28, 28)
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.flatten(1)
            return self.fc2(F.relu(self.fc1(x)))

    _MODELS = {"2NN": _TwoNN, "CNN": _CNN}

    def _make_model(name, seed=0):
        torch.manual_seed(seed)
        return _MODELS[name]()

    def _n_params(model):
        return sum(p.numel() for p in model.parameters())

    def _train_epochs(model, X, y, epochs=1, batch_size=10, lr=0.05, seed=0):
        """Plain SGD (no momentum, no weight decay), mean cross-entropy per batch.
        Returns the number of samples processed."""
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        n = X.shape[0]
        seen = 0
        for _ in range(epochs):
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, batch_size):
                idx = perm[s:s + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(X[idx]), y[idx])
                loss.backward()
                opt.step()
                seen += idx.numel()
        return seen

    @torch.no_grad()
    def _evaluate(model, X, y, batch_size=1000):
        model.eval()
        correct, loss_sum = 0, 0.0
        for s in range(0, X.shape[0], batch_size):
            out = model(X[s:s + batch_size])
            loss_sum += F.cross_entropy(out, y[s:s + batch_size], reduction="sum").item()
            correct += (out.argmax(1) == y[s:s + batch_size]).sum().item()
        n = max(1, X.shape[0])
        return loss_sum / n, correct / n

    return _load_csv, _make_model, _n_params, _train_epochs, _evaluate


def peer_code(builtin):
    """(load_csv, make_model, n_params, train_epochs, evaluate, description)."""
    if not builtin and os.path.isfile(SHARED_COMMON):
        sys.path.insert(0, SHARED_APP)
        from peerfl.common import evaluate, load_csv, make_model, n_params, train_epochs
        return load_csv, make_model, n_params, train_epochs, evaluate, os.path.relpath(SHARED_COMMON, REPO)
    return (*builtin_code(), "built-in copy in scripts/peer_torch_bench.py")


# ---------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return -1.0


def write_json_atomic(path, obj):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".torch-bench.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", metavar="DIR", default=os.path.join(REPO, "data"),
                    help="folder with mnist5k-train.csv and mnist5k-test.csv (default: data/ at the repository root)")
    ap.add_argument("--out", metavar="FILE", default=os.path.join(REPO, ".build", "bench", "torch.json"),
                    help="JSON output file (default: .build/bench/torch.json)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads values (default: 1 2)")
    ap.add_argument("--models", nargs="+", default=["2NN", "CNN"], choices=["2NN", "CNN"],
                    help="models to measure (default: 2NN CNN)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 32, 64],
                    help="mini-batch sizes (default: 10 32 64)")
    ap.add_argument("--epochs", type=int, default=5, help="total epochs per config, >= 4: 1 warm-up + 3 timed (default: 5)")
    ap.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default: 0.05)")
    ap.add_argument("--builtin-models", action="store_true",
                    help="use the built-in copy of the models and loop even when shared/peer is present")
    args = ap.parse_args(argv)
    if args.epochs < 4:
        ap.error("--epochs must be at least 4 (1 warm-up + 3 timed epochs)")
    if min(args.threads) < 1 or min(args.batch_sizes) < 1:
        ap.error("--threads and --batch-sizes must be positive")
    paths = [os.path.join(args.data, f"mnist5k-{s}.csv") for s in ("train", "test")]
    for p in paths:
        if not os.path.isfile(p):
            ap.error(f"{p} not found; run `make data` (scripts/fetch_data.py) first")

    _, torch = import_torch()
    load_csv, make_model, n_params, train_epochs, evaluate, code = peer_code(args.builtin_models)
    Xtr, ytr = load_csv(paths[0])
    Xte, yte = load_csv(paths[1])
    n = Xtr.shape[0]
    env = {
        "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(), "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(), "parallel_info": torch.__config__.parallel_info(),
        "peer_code": code,
    }
    print(f"torch {env['torch']} | {env['cpu']} | {env['logical_cpus']} logical CPUs | train {n} test {Xte.shape[0]}"
          f" | models from {code}")
    rows = []
    for T in args.threads:
        torch.set_num_threads(T)
        for M in args.models:
            for B in args.batch_sizes:
                model = make_model(M, seed=0)
                load_before = loadavg()
                times = []
                for ep in range(args.epochs):
                    t0 = time.perf_counter()
                    train_epochs(model, Xtr, ytr, epochs=1, batch_size=B, lr=args.lr, seed=ep)
                    times.append(time.perf_counter() - t0)
                loss, acc = evaluate(model, Xte, yte)
                med = statistics.median(times[1:4])
                r = {"threads": T, "model": M, "params": n_params(model), "batch": B,
                     "samples_per_s": round(n / med, 1), "epoch_s_median": round(med, 4),
                     "warmup_epoch_s": round(times[0], 4), "epoch_s_all": [round(t, 4) for t in times],
                     "epochs": args.epochs, "test_acc": round(acc, 4), "test_loss": round(loss, 4),
                     "loadavg1_before": load_before, "loadavg1_after": loadavg()}
                rows.append(r)
                print(f"threads={T} {M:3s} B={B:<3d} {r['samples_per_s']:>9.1f} samples/s "
                      f"(median epoch {med:.3f}s, warm-up {times[0]:.3f}s) "
                      f"test acc after {args.epochs} epochs {acc:.4f} "
                      f"(loadavg {load_before:.2f}->{r['loadavg1_after']:.2f})",
                      flush=True)
    write_json_atomic(args.out, {"env": env, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
