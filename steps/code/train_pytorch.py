"""Train a small regression network on a CSV table: the built-in PyTorch script-mode entry point.

Runs in the SageMaker PyTorch training container and, unmodified, in mlpipe's local runner.
torch is imported inside main(), so this module imports (and its hyperparameter rules can be
checked) where torch is not installed.

Contract:
  data             $SM_CHANNEL_TRAIN (default /opt/ml/input/data/train) and, optionally,
                   $SM_CHANNEL_VALIDATION: CSV files without a header, target first (the layout
                   the preprocess step writes). Non-numeric feature columns are text: each
                   becomes a hashed bag of its tokens.
  hyperparameters  --batch_size --max_epochs --lr --tokenizer_choice --model_class
                   --checkpoint_path --seed on the command line (how SageMaker passes them),
                   over $SM_HPS (JSON) or, without it, $SM_INPUT_CONFIG_DIR/hyperparameters.json
                   (default /opt/ml/input/config)
  checkpoints      checkpoint.pt each epoch in checkpoint_path, else $SM_CHECKPOINT_DIR, else
                   /opt/ml/checkpoints when it exists (SageMaker creates it when the job has a
                   checkpoint S3 URI); training resumes from a checkpoint found there
  writes           $SM_MODEL_DIR/model.pt (default /opt/ml/model): state_dict, model_class,
                   input_dim, layers, objective, text_columns, tokenizer, hash_buckets;
                   $SM_MODEL_DIR/code/inference.py (the serving script, so model.tar.gz serves as
                   is); $SM_OUTPUT_DATA_DIR/metrics.json when that variable is set
  prints           ``epoch=<n> train_loss=<x> validation_loss=<y>`` per epoch, for metric regexes
Bad hyperparameters or data exit with code 2 and one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import zlib
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

# name: (type, default)
HYPERPARAMETERS = {
    "batch_size": (int, 32),
    "max_epochs": (int, 10),
    "lr": (float, 1e-3),
    "tokenizer_choice": (str, "hashing"),
    "model_class": (str, "mlp"),
    "checkpoint_path": (str, None),
    "seed": (int, 42),
}
_KIND_NAMES = {int: "an integer", float: "a number", str: "text"}
MODEL_CLASSES = ("mlp", "linear")
HIDDEN_UNITS = 64
HASH_BUCKETS = 256
CHECKPOINT_FILE = "checkpoint.pt"


class TrainingError(ValueError):
    """Hyperparameters or data that cannot be trained on; the message says what to fix."""


# --- hyperparameters -------------------------------------------------------------------------

def parse_hyperparameters(argv: Sequence[str] | None = None,
                          environ: Mapping[str, str] | None = None) -> dict:
    """Defaults, overridden by $SM_HPS or hyperparameters.json, overridden by the command line."""
    environ = os.environ if environ is None else environ
    values = {name: default for name, (_, default) in HYPERPARAMETERS.items()}
    configured, source = _configured(environ)
    values.update(_cast(configured, source))
    parser = argparse.ArgumentParser(description="Train a regression network on a CSV table.")
    for name in HYPERPARAMETERS:
        parser.add_argument(f"--{name}", default=argparse.SUPPRESS)
    values.update(_cast(vars(parser.parse_args(argv)), "the command line"))
    if values["batch_size"] < 1 or values["max_epochs"] < 1:
        raise TrainingError("batch_size and max_epochs must be at least 1")
    if not values["lr"] > 0:
        raise TrainingError(f"lr must be positive, not {values['lr']}")
    if values["model_class"] not in MODEL_CLASSES:
        raise TrainingError(f"model_class {values['model_class']!r} is not one of {', '.join(MODEL_CLASSES)}")
    return values


def _configured(environ: Mapping[str, str]) -> tuple[dict, str]:
    if "SM_HPS" in environ:
        return json.loads(environ["SM_HPS"]), "SM_HPS"
    path = Path(environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")) / "hyperparameters.json"
    if not path.is_file():
        return {}, ""
    # SageMaker stores every value as a string, JSON-encoded by the SDK for framework estimators,
    # and adds its own sagemaker_* entries.
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {k: _json_or_text(v) for k, v in raw.items() if not k.startswith("sagemaker_")}, str(path)


def _json_or_text(value):
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _cast(raw: Mapping, source: str) -> dict:
    values = {}
    for name, value in raw.items():
        if name not in HYPERPARAMETERS:
            raise TrainingError(f"unknown hyperparameter {name!r} in {source}; known: "
                                f"{', '.join(HYPERPARAMETERS)}")
        kind, default = HYPERPARAMETERS[name]
        if default is None and value in (None, "", "None"):  # an optional one, left unset
            values[name] = None
            continue
        try:
            values[name] = kind(value)
        except (TypeError, ValueError):
            raise TrainingError(f"hyperparameter {name}={value!r} from {source} must be "
                                f"{_KIND_NAMES[kind]}") from None
    return values


# --- data ------------------------------------------------------------------------------------

def read_rows(directory: str | os.PathLike) -> list[list[str]]:
    """The non-blank rows of every *.csv under ``directory``, in sorted file order."""
    directory = Path(directory)
    files = [p for p in _files(directory) if p.suffix.lower() == ".csv"]
    if not files:
        raise TrainingError(f"no CSV files under {directory}; the channel must hold the preprocess "
                            "step's output (target first, no header)")
    rows = []
    for path in files:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows.extend(r for r in csv.reader(f) if any(c.strip() for c in r))
    if not rows:
        raise TrainingError(f"the CSV files under {directory} hold no rows")
    width = len(rows[0])
    if width < 2 or any(len(r) != width for r in rows):
        raise TrainingError(f"the rows under {directory} must all have the same number (2 or more) of "
                            "columns: the target, then the features")
    return rows


def _files(directory: Path) -> list[Path]:
    """Every file under ``directory``, sorted; symlinked folders count (the local runner links inputs)."""
    return sorted(Path(root) / name for root, _, names in os.walk(directory, followlinks=True) for name in names)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def text_columns(rows: list[list[str]]) -> list[int]:
    """Feature columns (1-based, as the target is column 0) holding something other than numbers."""
    return [j for j in range(1, len(rows[0]))
            if any(r[j].strip() and not _is_number(r[j]) for r in rows)]


def hashing_tokenizer(text: str) -> list[str]:
    """Lower-cased word tokens: needs no vocabulary and no network."""
    return re.findall(r"\w+", text.lower())


def resolve_tokenizer(choice: str) -> tuple[str, Callable[[str], list[str]]]:
    """(name actually used, tokenize): ``choice`` when it is installed and cached, else hashing.

    The fallback keeps training offline-safe: nothing is ever downloaded.
    """
    if choice != "hashing":
        try:
            from transformers import AutoTokenizer
            return choice, AutoTokenizer.from_pretrained(choice, local_files_only=True).tokenize
        except Exception as exc:  # ImportError, OSError when not cached, ValueError for odd names
            print(f"tokenizer {choice!r} is not available locally ({type(exc).__name__}); using the "
                  "built-in hashing tokenizer", file=sys.stderr)
    return "hashing", hashing_tokenizer


def featurize(rows: list[list[str]], text: Sequence[int], tokenize: Callable[[str], list[str]] | None,
              buckets: int = HASH_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """(targets, features): numbers as they are (missing ones as 0, which preprocess never
    leaves), each text column as ``buckets`` token counts keyed by crc32 (stable across runs)."""
    text = set(text)
    targets, features = [], []
    for r in rows:
        if not _is_number(r[0]):
            raise TrainingError(f"target {r[0]!r} is not a number; train_pytorch trains regression "
                                "models on target-first CSV files")
        vector = []
        for j in range(1, len(r)):
            if j in text:
                counts = [0.0] * buckets
                for token in tokenize(r[j]):
                    counts[zlib.crc32(token.encode("utf-8")) % buckets] += 1.0
                vector.extend(counts)
            elif not r[j].strip():
                vector.append(0.0)
            elif _is_number(r[j]):
                vector.append(float(r[j]))
            else:
                raise TrainingError(f"column {j} holds text ({r[j]!r}) here but numbers in the "
                                    "training data")
        targets.append(float(r[0]))
        features.append(vector)
    return np.asarray(targets, dtype=np.float32), np.asarray(features, dtype=np.float32)


def layer_spec(model_class: str, input_dim: int) -> list[list]:
    """The network as data, so model.pt can be rebuilt without this module (see evaluate.py)."""
    if model_class == "linear":
        return [["linear", input_dim, 1]]
    return [["linear", input_dim, HIDDEN_UNITS], ["relu"], ["linear", HIDDEN_UNITS, 1]]


# --- training --------------------------------------------------------------------------------

def checkpoint_file(checkpoint_path: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    directory = checkpoint_path or environ.get("SM_CHECKPOINT_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        return Path(directory) / CHECKPOINT_FILE
    default = Path("/opt/ml/checkpoints")
    return default / CHECKPOINT_FILE if default.is_dir() else None


def _train(torch, hps: dict) -> dict:
    rows = read_rows(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    text = text_columns(rows)
    tokenizer, tokenize = resolve_tokenizer(hps["tokenizer_choice"]) if text else (None, None)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def tensors(data):
        y, x = featurize(data, text, tokenize)
        return torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

    x_train, y_train = tensors(rows)
    validation_dir = os.environ.get("SM_CHANNEL_VALIDATION")
    validation = tensors(read_rows(validation_dir)) if validation_dir else None
    if validation is not None and validation[0].shape[1] != x_train.shape[1]:
        raise TrainingError("the validation rows have a different number of columns from the training rows")

    torch.manual_seed(hps["seed"])
    layers = layer_spec(hps["model_class"], x_train.shape[1])
    net = torch.nn.Sequential(*(torch.nn.Linear(s[1], s[2]) if s[0] == "linear" else torch.nn.ReLU()
                                for s in layers)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=hps["lr"])
    loss_fn = torch.nn.MSELoss()
    checkpoint = checkpoint_file(hps["checkpoint_path"])
    first_epoch = _resume(torch, checkpoint, net, optimizer, layers, device)

    def loss_on(x, y) -> float:
        net.eval()
        with torch.no_grad():
            return float(loss_fn(net(x).squeeze(1), y))

    for epoch in range(first_epoch, hps["max_epochs"] + 1):
        net.train()
        # Seeded per epoch, so a resumed run shuffles as the uninterrupted one would have.
        order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(hps["seed"] + epoch))
        total = 0.0
        for batch in order.to(device).split(hps["batch_size"]):
            optimizer.zero_grad()
            loss = loss_fn(net(x_train[batch]).squeeze(1), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        line = f"epoch={epoch} train_loss={total / len(y_train):.6f}"
        if validation is not None:
            line += f" validation_loss={loss_on(*validation):.6f}"
        print(line, flush=True)
        if checkpoint is not None:
            _save(torch, {"epoch": epoch, "layers": layers, "state_dict": net.state_dict(),
                          "optimizer": optimizer.state_dict()}, checkpoint)

    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    model_dir.mkdir(parents=True, exist_ok=True)
    _save(torch, {
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "model_class": hps["model_class"], "input_dim": int(x_train.shape[1]), "layers": layers,
        "objective": "reg:squarederror", "text_columns": text, "tokenizer": tokenizer,
        "hash_buckets": HASH_BUCKETS,
    }, model_dir / "model.pt")
    _copy_inference_script(model_dir)
    metrics = {"train_loss": loss_on(x_train, y_train), "epochs": hps["max_epochs"], "tokenizer": tokenizer}
    if validation is not None:
        metrics["validation_loss"] = loss_on(*validation)
    return metrics


def _resume(torch, checkpoint: Path | None, net, optimizer, layers: list, device) -> int:
    """The first epoch to run: 1, or the one after the checkpoint's."""
    if checkpoint is None or not checkpoint.is_file():
        return 1
    saved = torch.load(checkpoint, map_location=device, weights_only=True)
    if saved.get("layers") != layers:
        raise TrainingError(f"the checkpoint {checkpoint} is for another network ({saved.get('layers')}); "
                            "remove it or set a different checkpoint_path")
    net.load_state_dict(saved["state_dict"])
    optimizer.load_state_dict(saved["optimizer"])
    print(f"resumed from {checkpoint} after epoch {saved['epoch']}", flush=True)
    return saved["epoch"] + 1


def _save(torch, obj: dict, path: Path) -> None:
    """Save through a temp file, so an interrupted job never leaves half a checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _copy_inference_script(model_dir: Path) -> None:
    """SageMaker serves a PyTorch model with model.tar.gz's code/inference.py; the build ships
    inference_pytorch.py next to this script for that."""
    source = Path(__file__).with_name("inference_pytorch.py")
    if not source.is_file():
        print(f"warning: {source.name} is not next to {Path(__file__).name}; the model has no "
              "code/inference.py and needs one before it can be served", file=sys.stderr)
        return
    (model_dir / "code").mkdir(exist_ok=True)
    shutil.copyfile(source, model_dir / "code" / "inference.py")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        hps = parse_hyperparameters(argv)
        try:
            import torch
        except ImportError:
            raise TrainingError("train_pytorch needs torch: run it in the SageMaker PyTorch image, or "
                                "install mlpipe[torch] for local runs") from None
        metrics = _train(torch, hps)
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output_dir = os.environ.get("SM_OUTPUT_DATA_DIR")
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n",
                                                       encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
