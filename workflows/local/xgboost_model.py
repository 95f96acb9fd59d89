"""``xgboost-model`` as SageMaker's XGBoost 1.7-1 container writes and reads it, with any xgboost.

The container (sagemaker-xgboost-container, branch 1.7-1, xgboost 1.7.4) saves its booster with
``bst.save_model(os.path.join(model_dir, "xgboost-model"))`` (algorithm_mode/train.py:420-429).
A file name without ``.json``/``.ubj`` makes xgboost 1.7 write its legacy binary format
("binf"...). Its endpoint loads every file of the model directory, first as a pickle and then
with ``Booster.load_model`` (algorithm_mode/serve_utils.py:168-194); with more than one file
(``_kfold`` writes ``xgboost-model-<fold>``) it averages the models' predictions, or takes the
vote for multi:softmax and binary:hinge (serve_utils.py:224-237), and it predicts with
``ntree_limit=best_ntree_limit``, which xgboost 1.7's ``load_model`` reads from the model's
attributes.

xgboost 3.x neither reads nor writes that binary format, and an xgboost 3.x JSON/UBJSON model
loses its base_score in xgboost 1.7 (3.x writes it as a vector, "[9.9E0]", which 1.7 cannot
parse, so a regression model predicts around 0.5 + trees: MSE 94 instead of 4.9 on abalone).
This module converts in both directions, in pure Python, byte for byte as xgboost 1.7.4 does
(src/learner.cc LearnerIO::SaveModel/LoadModel, src/gbm/gbtree_model.cc, src/tree/tree_model.cc,
src/gbm/gblinear_model.h), so that:

- ``save_booster`` writes what the container writes, loadable by the container's endpoint;
- ``load_booster`` / ``load_model_dir`` load what the container writes into the installed
  xgboost, whatever its version, and ``predict`` predicts as the container's endpoint does.

This module is long on purpose: one binary format, read and written field by field against
xgboost 1.7.4's sources, with the loaders that must agree with it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
from pathlib import Path
from typing import Any, Sequence

MODEL_NAME = "xgboost-model"  # constants/xgb_constants.py:96
FORMAT_VERSION = (1, 7)        # the version xgboost 1.7.4 stamps into a binary model
_HEADER = b"binf"
_LEARNER_PARAM = struct.Struct("<fIiiiIIIi25i")     # LearnerModelParamLegacy, 136 bytes
_GBTREE_PARAM = struct.Struct("<iiiiqii32i")        # GBTreeModelParam, 160 bytes
_GBLINEAR_PARAM = struct.Struct("<Ii32i")           # DeprecatedGBLinearModelParam, 136 bytes
_TREE_PARAM = struct.Struct("<iiiiIi31i")           # TreeParam, 148 bytes
_NODE = struct.Struct("<iiiIf")                     # RegTree::Node, 20 bytes
_STAT = struct.Struct("<fffi")                      # RTreeNodeStat, 16 bytes
_U64 = struct.Struct("<Q")
_DELETED = 0xFFFFFFFF                               # RegTree::kDeletedNodeMarker
_INVALID = -1                                       # RegTree::kInvalidNodeId

# xgboost 1.7.4's objective configurations (ObjFunction::SaveConfig): the parameter block's
# name and its fields with their defaults, as 1.7 stores them in the "objective" attribute.
_OBJECTIVE_PARAMS: dict[str, tuple[str, dict[str, str]] | None] = {
    **{name: ("reg_loss_param", {"scale_pos_weight": "1"}) for name in (
        "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "binary:logistic", "binary:logitraw",
        "reg:linear")},
    "reg:pseudohubererror": ("pseudo_huber_param", {"huber_slope": "1"}),
    "count:poisson": ("poisson_regression_param", {"max_delta_step": "0.699999988"}),
    "reg:tweedie": ("tweedie_regression_param", {"tweedie_variance_power": "1.5"}),
    "multi:softmax": ("softmax_multiclass_param", {"num_class": "0"}),
    "multi:softprob": ("softmax_multiclass_param", {"num_class": "0"}),
    "survival:aft": ("aft_loss_param", {"aft_loss_distribution": "normal", "aft_loss_distribution_scale": "1"}),
    **{name: ("lambda_rank_param", {"num_pairsample": "1", "fix_list_weight": "0"}) for name in (
        "rank:pairwise", "rank:ndcg", "rank:map")},
    "reg:gamma": None, "reg:absoluteerror": None, "binary:hinge": None, "survival:cox": None,
}


class ModelFormatError(ValueError):
    """The bytes are not a model this module can read or write in the 1.7 format."""


# --- formats ---------------------------------------------------------------------------------

def model_format(data: bytes) -> str:
    """"binary" (xgboost's legacy format), "json", "ubjson" or "pickle", from the content."""
    if data[:4] == _HEADER:
        return "binary"
    stripped = data.lstrip()
    if stripped[:1] == b"{":
        rest = stripped[1:].lstrip()
        return "json" if rest[:1] in (b'"', b"}") else "ubjson"
    if data[:1] == b"\x80":
        return "pickle"
    raise ModelFormatError("not an XGBoost model (neither the binary format, JSON, UBJSON nor a pickle)")


# --- legacy binary -> JSON model document ------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: struct.Struct) -> tuple:
        if self.pos + fmt.size > len(self.data):
            raise ModelFormatError("truncated binary model")
        out = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return out

    def array(self, fmt: struct.Struct, n: int) -> list[tuple]:
        return [self.take(fmt) for _ in range(n)]

    def string(self) -> str:
        (n,) = self.take(_U64)
        if self.pos + n > len(self.data):
            raise ModelFormatError("truncated binary model")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out.decode("utf-8")

    def floats(self) -> list[float]:
        (n,) = self.take(_U64)
        return list(self.take(struct.Struct(f"<{n}f"))) if n else []


def _num(x: float) -> float:
    """A float32 read from the file, as a Python float: exactly the same value, and its repr
    (at most 17 digits) reads back as the same float32 in xgboost's JSON parser."""
    return x


def _score_text(x: float) -> str:
    """base_score as xgboost 1.7 writes it into JSON (to_chars of the float32: "5E-1", "9.9E0")."""
    import numpy as np

    mantissa, exponent = np.format_float_scientific(np.float32(x), unique=True, trim="-").split("e")
    return f"{mantissa.upper()}E{int(exponent)}"


def legacy_to_json(data: bytes) -> dict:
    """The model in a legacy binary file as xgboost 1.7's JSON model document, which every
    xgboost from 1.0 on loads (xgboost 1.7.4 LearnerIO::LoadModel(dmlc::Stream*))."""
    if data[:4] != _HEADER:
        raise ModelFormatError("not an XGBoost binary model (no 'binf' header); models from xgboost "
                               "before 1.0 (SageMaker XGBoost before 1.0-1) are not supported")
    r = _Reader(data)
    r.pos = 4
    (base_score, num_feature, num_class, extra_attrs, _metrics, major, minor, num_target,
     boost_from_average, *_) = r.take(_LEARNER_PARAM)
    if major < 1:
        raise ModelFormatError("a binary model from xgboost before 1.0 stores a transformed base_score; "
                               "load it with that xgboost and save it again as JSON")
    objective, booster = r.string(), r.string()
    if booster in ("gbtree", "dart"):
        param = r.take(_GBTREE_PARAM)
        num_trees, num_parallel_tree = param[0], param[1]
        trees = [_read_tree(r, i) for i in range(num_trees)]
        tree_info = list(r.take(struct.Struct(f"<{num_trees}i"))) if num_trees else []
        model = {"gbtree_model_param": {"num_parallel_tree": str(num_parallel_tree), "num_trees": str(num_trees),
                                        "size_leaf_vector": "0"},
                 "trees": trees, "tree_info": tree_info}
        gradient_booster: dict[str, Any] = {"name": "gbtree", "model": model}
        if booster == "dart":
            weight_drop = r.floats() if num_trees else []
            gradient_booster = {"name": "dart", "gbtree": gradient_booster,
                                "weight_drop": [_num(w) for w in weight_drop]}
    elif booster == "gblinear":
        r.take(_GBLINEAR_PARAM)
        gradient_booster = {"name": "gblinear", "model": {"boosted_rounds": 0,
                                                          "weights": [_num(w) for w in r.floats()]}}
    else:
        raise ModelFormatError(f"unknown booster {booster!r} in the binary model")
    attributes: dict[str, str] = {}
    if extra_attrs:
        (n,) = r.take(_U64)
        for _ in range(n):
            key = r.string()
            attributes[key] = r.string()
    objective_doc = json.loads(attributes.pop("objective")) if "objective" in attributes else {"name": objective}
    attributes.pop("metrics", None)
    attributes = {k: v for k, v in attributes.items() if not k.startswith("SAVED_PARAM_")}
    return {"learner": {
        "attributes": attributes, "feature_names": [], "feature_types": [],
        "gradient_booster": gradient_booster,
        "learner_model_param": {"base_score": _score_text(base_score), "boost_from_average": str(boost_from_average),
                                "num_class": str(num_class), "num_feature": str(num_feature),
                                "num_target": str(num_target or 1)},
        "objective": objective_doc},
        "version": [major, minor, 0]}


def _read_tree(r: _Reader, tree_id: int) -> dict:
    param = r.take(_TREE_PARAM)
    n = param[1]
    nodes = r.array(_NODE, n)
    stats = r.array(_STAT, n)
    lefts = [node[1] for node in nodes]
    return {
        "base_weights": [_num(s[2]) for s in stats],
        "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
        "default_left": [int(node[3] >> 31) for node in nodes],
        "id": tree_id,
        "left_children": lefts,
        "loss_changes": [_num(s[0]) for s in stats],
        "parents": [node[0] & 0x7FFFFFFF for node in nodes],
        "right_children": [node[2] for node in nodes],
        "split_conditions": [_num(node[4]) for node in nodes],
        "split_indices": [node[3] & 0x7FFFFFFF for node in nodes],
        "split_type": [0] * n,
        "sum_hessian": [_num(s[1]) for s in stats],
        "tree_param": {"num_deleted": str(param[2]), "num_feature": str(param[4]), "num_nodes": str(n),
                       "size_leaf_vector": "0"},
    }


# --- JSON model document -> legacy binary ------------------------------------------------------

def _parse_base_score(text: str) -> float:
    """base_score as xgboost 1.x ("5E-1") or 2.x/3.x ("[5E-1]", one value per target) writes it."""
    values = [float(v) for v in text.strip().strip("[]").split(",") if v.strip()]
    if not values or any(v != values[0] for v in values):
        raise ModelFormatError(f"base_score {text!r} has one value per output; xgboost 1.7 keeps a single "
                               "base_score (train with an explicit base_score)")
    return values[0]


def _objective_doc(doc: dict) -> dict:
    """The objective configuration exactly as xgboost 1.7.4 writes it."""
    name = doc["name"]
    if name not in _OBJECTIVE_PARAMS:
        raise ModelFormatError(f"objective {name!r} does not exist in xgboost 1.7")
    spec = _OBJECTIVE_PARAMS[name]
    if spec is None:
        return {"name": name}
    block, defaults = spec
    given = next((v for k, v in doc.items() if k != "name" and isinstance(v, dict)), {})
    if name.startswith("rank:"):
        given = {}  # xgboost 2+ ranking parameters have no 1.7 counterpart
    return {"name": name, block: {k: str(given.get(k, default)) for k, default in defaults.items()}}


def json_to_legacy(model: dict | bytes | str, boost_from_average: bool | None = None) -> bytes:
    """The binary file xgboost 1.7.4's ``save_model("xgboost-model")`` writes for this model.

    ``model`` is an xgboost JSON model document (``booster.save_raw("json")``, any version from
    1.0). ``boost_from_average`` overrides the flag xgboost 1.7 sets when the user gave no
    base_score (xgboost 2+ records an explicitly passed base_score as the user's).
    """
    if isinstance(model, (bytes, bytearray, str)):
        model = json.loads(model)
    learner = model["learner"]
    lmp = learner["learner_model_param"]
    num_target = int(lmp.get("num_target", "1"))
    if num_target > 1:
        raise ModelFormatError("multi-target models do not exist in xgboost 1.7")
    bfa = int(lmp.get("boost_from_average", "1")) if boost_from_average is None else int(boost_from_average)
    out = io.BytesIO()
    out.write(_HEADER)
    out.write(_LEARNER_PARAM.pack(_parse_base_score(lmp["base_score"]), int(lmp["num_feature"]),
                                  int(lmp["num_class"]), 1, 0, *FORMAT_VERSION, 1, bfa, *([0] * 25)))
    objective = _objective_doc(learner["objective"])
    gb = learner["gradient_booster"]
    _write_string(out, objective["name"])
    _write_string(out, gb["name"])
    if gb["name"] in ("gbtree", "dart"):
        tree_model = gb["model"] if gb["name"] == "gbtree" else gb["gbtree"]["model"]
        trees = tree_model["trees"]
        num_parallel_tree = int(tree_model["gbtree_model_param"].get("num_parallel_tree", "1"))
        out.write(_GBTREE_PARAM.pack(len(trees), num_parallel_tree, 0, 0, 0, 0, 0, *([0] * 32)))
        for tree in trees:
            _write_tree(out, tree)
        if trees:
            out.write(struct.pack(f"<{len(trees)}i", *tree_model["tree_info"]))
        if gb["name"] == "dart" and trees:
            _write_floats(out, gb["weight_drop"])
    elif gb["name"] == "gblinear":
        out.write(_GBLINEAR_PARAM.pack(0, 0, *([0] * 32)))
        _write_floats(out, gb["model"]["weights"])
    else:
        raise ModelFormatError(f"booster {gb['name']!r} cannot be saved in the binary format")
    attributes = {k: str(v) for k, v in learner.get("attributes", {}).items()}
    attributes["objective"] = json.dumps(objective, sort_keys=True, separators=(",", ":"))
    out.write(_U64.pack(len(attributes)))
    for key in sorted(attributes):
        _write_string(out, key)
        _write_string(out, attributes[key])
    return out.getvalue()


def _write_string(out: io.BytesIO, text: str) -> None:
    raw = text.encode("utf-8")
    out.write(_U64.pack(len(raw)))
    out.write(raw)


def _write_floats(out: io.BytesIO, values: Sequence[float]) -> None:
    out.write(_U64.pack(len(values)))
    out.write(struct.pack(f"<{len(values)}f", *values))


def _write_tree(out: io.BytesIO, tree: dict) -> None:
    n = int(tree["tree_param"]["num_nodes"])
    if any(tree.get("split_type", [])) or tree.get("categories"):
        raise ModelFormatError("a model with categorical splits cannot be saved in the binary format")
    if int(tree["tree_param"].get("size_leaf_vector", "0")) > 1:
        raise ModelFormatError("a model with vector leaves cannot be saved in the binary format")
    out.write(_TREE_PARAM.pack(1, n, int(tree["tree_param"]["num_deleted"]), 0,
                               int(tree["tree_param"]["num_feature"]), 0, *([0] * 31)))
    lefts, rights, parents = tree["left_children"], tree["right_children"], tree["parents"]
    nodes = bytearray()
    for i in range(n):
        if i == 0:
            parent = _INVALID
        else:
            p = parents[i]
            parent = p | (1 << 31) if lefts[p] == i else p
            parent = parent - (1 << 32) if parent >= 1 << 31 else parent
        sindex = (int(tree["split_indices"][i]) & 0x7FFFFFFF) | (int(tree["default_left"][i]) << 31)
        nodes += _NODE.pack(parent, lefts[i], rights[i], sindex, tree["split_conditions"][i])
    out.write(nodes)
    stats = bytearray()
    for i in range(n):
        stats += _STAT.pack(tree["loss_changes"][i], tree["sum_hessian"][i], tree["base_weights"][i], 0)
    out.write(stats)


# --- xgboost objects ---------------------------------------------------------------------------

def _xgboost():
    import xgboost

    return xgboost


class _BoosterUnpickler(pickle.Unpickler):
    """Only an xgboost Booster and the plain types its state holds: the container loads models
    with pickle.load first (models from its versions before 1.3-1 are pickles)."""

    _ALLOWED = {("xgboost.core", "Booster"), ("builtins", "bytearray"), ("builtins", "set"),
                ("builtins", "frozenset"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model pickle")
        return super().find_class(module, name)


def load_booster(source: str | os.PathLike | bytes | bytearray):
    """A Booster of the installed xgboost from a model file (or its bytes) in any format the
    container reads: the legacy binary format, JSON, UBJSON, or a pickled Booster."""
    xgb = _xgboost()
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    kind = model_format(data)
    if kind == "pickle":
        booster = _BoosterUnpickler(io.BytesIO(data)).load()
        if not isinstance(booster, xgb.Booster):
            raise ModelFormatError("the pickle does not hold an xgboost Booster")
        return booster
    booster = xgb.Booster()
    if kind == "binary":
        try:
            booster.load_model(bytearray(data))  # xgboost < 3.1 reads it natively
            return booster
        except Exception:  # XGBoostError, or a UnicodeDecodeError of its message (binary bytes)
            booster = xgb.Booster()
            data = json.dumps(legacy_to_json(data)).encode()
    booster.load_model(bytearray(data))
    return booster


def model_json(booster) -> dict:
    return json.loads(bytes(booster.save_raw("json")))


def save_booster(booster, path: str | os.PathLike, boost_from_average: bool | None = None,
                 fmt: str = "binary") -> Path:
    """Write ``booster`` as the container does: the xgboost 1.7 binary format at ``path``.

    ``fmt="json"`` writes the same model as xgboost 1.7's JSON document instead (scalar
    base_score, 1.7's objective parameters), which xgboost 1.7 and every later version load."""
    data = json_to_legacy(model_json(booster), boost_from_average=boost_from_average)
    if fmt == "json":
        data = json.dumps(legacy_to_json(data), separators=(",", ":")).encode()
    elif fmt != "binary":
        raise ValueError(f"unknown model format {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def model_files(model_dir: str | os.PathLike) -> list[Path]:
    """The files the container's endpoint loads: every file of the directory but dotfiles
    (serve_utils._get_full_model_paths), in name order (the container takes listdir order)."""
    directory = Path(model_dir)
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def load_model_dir(model_dir: str | os.PathLike, ensemble: bool = True) -> list:
    """Every model of an extracted model.tar.gz, as serve_utils.get_loaded_booster(ensemble)."""
    files = model_files(model_dir)
    if not files:
        raise ModelFormatError(f"no model file in {model_dir}")
    return [load_booster(f) for f in (files if ensemble else files[:1])]


def objective(booster) -> str:
    return json.loads(booster.save_config())["learner"]["objective"]["name"]


def _iteration_end(booster) -> int:
    """xgboost 1.7 predicts with ntree_limit=best_ntree_limit (the attribute load_model reads),
    which it turns into iteration_range=(0, ntree_limit // num_parallel_tree)."""
    limit = int(booster.attr("best_ntree_limit") or 0)
    if not limit:
        return 0
    config = json.loads(booster.save_config())["learner"]["gradient_booster"]
    tree = config.get("gbtree", config)
    parallel = int(tree.get("gbtree_model_param", {}).get("num_parallel_tree", "1") or 1) \
        if config["name"] in ("gbtree", "dart") else 0
    return limit // parallel if parallel else 0


def predict(boosters, features):
    """Predictions as the container's endpoint makes them (serve_utils.predict): one model's
    output, or the mean of an ensemble's (the mode for multi:softmax and binary:hinge)."""
    import numpy as np

    xgb = _xgboost()
    boosters = boosters if isinstance(boosters, (list, tuple)) else [boosters]
    dmatrix = xgb.DMatrix(np.asarray(features, dtype=float))
    outputs = [b.predict(dmatrix, iteration_range=(0, _iteration_end(b)), validate_features=False)
               for b in boosters]
    if len(outputs) == 1:
        return outputs[0]
    if objective(boosters[0]) in ("multi:softmax", "binary:hinge"):
        stacked = np.asarray(outputs)
        values = np.unique(stacked)
        counts = np.stack([(stacked == v).sum(axis=0) for v in values])
        return values[np.argmax(counts, axis=0)]  # scipy.stats.mode: the smallest of the most frequent
    return np.mean(outputs, axis=0)
