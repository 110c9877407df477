"""The Keras MNIST convnet example run in Keras itself (TensorFlow CPU), timed like bench/time_to_accuracy.py.

TensorFlow lives in its own virtual environment inside bench/ — never a convscope dependency:

    python3 -m venv bench/.venv-tf && bench/.venv-tf/bin/pip install tensorflow-cpu==2.21.0
    python bench/keras_reference.py prepare            # (convscope's venv) writes the same splits as .npz
    python bench/keras_reference.py run --seeds 3      # (convscope's venv) each run in bench/.venv-tf's Python

The example as published on keras.io: inputs scaled to [0, 1]; Conv2D(32, 3, relu), MaxPool(2),
Conv2D(64, 3, relu), MaxPool(2), Flatten, Dropout(0.5), Dense(10, softmax); Adam; batch 128; 15 epochs;
validation_split 0.1. Clock from the OS's process start; test accuracy every 20,000 (Fashion-MNIST) /
2,000 (digits) training images, evaluation time excluded. Writes bench/results/keras_reference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".keras-data"
THRESHOLDS = {"fashion-mnist": [0.90, 0.91, 0.92, 0.93, 0.94], "digits": [0.97, 0.98, 0.985, 0.99]}


def process_age() -> float:
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def prepare() -> None:
    import numpy as np

    from convscope.data import load

    DATA.mkdir(exist_ok=True)
    for name in ("digits", "fashion-mnist"):
        tr, te = load(name, "train"), load(name, "test")
        # Keras's validation_split holds out the *last* 10% unshuffled; the embedded digits are stored by
        # class, so shuffle once (fixed seed) as the official MNIST files already are
        order = np.random.default_rng(0).permutation(len(tr))
        np.savez_compressed(DATA / f"{name}.npz", x_train=tr.images[order, 0].numpy(), y_train=tr.labels[order].numpy(),
                            x_test=te.images[:, 0].numpy(), y_test=te.labels.numpy())
        print(f"wrote {DATA / name}.npz")


def run_one(dataset: str, seed: int, every_images: int) -> dict:
    t0 = time.perf_counter() - process_age()
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras

    keras.utils.set_random_seed(seed)
    d = np.load(DATA / f"{dataset}.npz")
    x_train = (d["x_train"].astype("float32") / 255)[..., None]
    x_test = (d["x_test"].astype("float32") / 255)[..., None]
    y_train = keras.utils.to_categorical(d["y_train"], 10)
    y_test = d["y_test"]
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"), keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"), keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    log, state = [], {"eval_s": 0.0, "images": 0}
    batch = 128
    every = max(1, round(every_images / batch))

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            state["images"] += batch
            if (state["images"] // batch) % every == 0:
                t = time.perf_counter()
                pred = self.model.predict(x_test, batch_size=1000, verbose=0).argmax(1)
                acc = float((pred == y_test).mean())
                state["eval_s"] += time.perf_counter() - t
                log.append({"images": state["images"], "wall": round(time.perf_counter() - t0 - state["eval_s"], 3),
                            "test_accuracy": acc})

    model.fit(x_train, y_train, batch_size=batch, epochs=15, validation_split=0.1, verbose=0, callbacks=[Timer()])
    t = time.perf_counter()
    final = float((model.predict(x_test, batch_size=1000, verbose=0).argmax(1) == y_test).mean())
    state["eval_s"] += time.perf_counter() - t
    wall = time.perf_counter() - t0 - state["eval_s"]
    log.append({"images": state["images"], "wall": round(wall, 3), "test_accuracy": final})
    out = {"recipe": "keras-example (Keras itself)", "dataset": dataset, "seed": seed, "log": log,
           "final_accuracy": final, "wall_seconds": wall, "tensorflow": tf.__version__,
           "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                       tf.config.threading.get_inter_op_parallelism_threads()]}
    for th in THRESHOLDS[dataset]:
        hit = next((e for e in log if e["test_accuracy"] >= th), None)
        out[f"time_to_{th}"] = hit["wall"] if hit else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["prepare", "run", "worker"])
    ap.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tf-python", type=Path, default=HERE / ".venv-tf" / "bin" / "python",
                    help="the Python of the TensorFlow environment that runs each training (default: %(default)s)")
    ap.add_argument("--worker-args", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode == "prepare":
        prepare()
        return
    if args.mode == "worker":
        ds, seed = args.worker_args
        print(json.dumps(run_one(ds, int(seed), 2_000 if ds == "digits" else 20_000)))
        return
    import statistics
    import subprocess

    sys.path.insert(0, str(HERE))
    from _machine import provenance  # convscope's side: the workers alone import TensorFlow

    if not args.tf_python.exists():
        raise SystemExit(f"--tf-python {args.tf_python} does not exist: create the TensorFlow environment first "
                         "(see this script's docstring)")
    runs = []
    for ds in args.datasets:
        for seed in range(args.seeds):
            r = subprocess.run([str(args.tf_python), __file__, "worker", "--worker-args", ds, str(seed)],
                               capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            if r.returncode:
                raise SystemExit(r.stderr[-3000:])
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(f"{ds} seed {seed}: {100 * runs[-1]['final_accuracy']:.2f}% after {runs[-1]['wall_seconds']:.1f} s",
                  flush=True)
    summary = []
    for ds in args.datasets:
        rs = [r for r in runs if r["dataset"] == ds]
        row = {"dataset": ds, "final_accuracy": statistics.mean(r["final_accuracy"] for r in rs),
               "wall_seconds": statistics.mean(r["wall_seconds"] for r in rs)}
        for th in THRESHOLDS[ds]:
            times = [r[f"time_to_{th}"] for r in rs]
            row[f"time_to_{th}"] = statistics.mean(times) if all(t is not None for t in times) else None
        summary.append(row)
        print(row)
    result = {"benchmark": "keras_reference", "provenance": provenance(), "summary": summary, "runs": runs}
    (HERE / "results" / "keras_reference.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
