"""CF export for torch-free serving: factors/biases as ``.npy``, id maps as parquet, an ONNX scorer.

The ONNX scorer maps user vectors ``float32 [b, d]`` (``user_vectors``) to scores over the whole
catalogue ``[b, n_items]`` (``scores``), with the item factors and biases baked in as constants. A
serving process feeds it a learned user vector or a fold-in vector
(:func:`smartreco.models.serving_math.fold_in_user`) and never imports torch.
torch is imported lazily: :class:`OnnxCFScorer` runs in ``.venv-serving``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from smartreco.models import serving_math as S

ONNX_INPUT = "user_vectors"
ONNX_OUTPUT = "scores"


def export_scorer_onnx(item_factors: np.ndarray, item_bias: np.ndarray, path: Path | str) -> Path:
    """Write the ``user_vectors -> scores`` ONNX graph (dynamo exporter, dynamic batch) to ``path``."""
    import torch

    class _Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("items_t", torch.as_tensor(np.ascontiguousarray(item_factors.T, dtype=np.float32)))
            self.register_buffer("bias", torch.as_tensor(np.asarray(item_bias, dtype=np.float32)))

        def forward(self, user_vectors: torch.Tensor) -> torch.Tensor:
            return user_vectors @ self.items_t + self.bias

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.zeros((2, item_factors.shape[1]), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Scorer().eval(), (sample,), str(path), dynamo=True, input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT], dynamic_shapes={"user_vectors": {0: batch}},
            external_data=False, verbose=False,
        )
    return path


def export_cf(model, out_dir: Path | str, *, onnx: bool = True) -> Path:
    """Write a fitted :class:`~smartreco.models.cf.CFRecommender` to ``out_dir`` (see module doc)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    users, items, bias = model.factors()
    np.save(out_dir / S.USER_FACTORS, users)
    np.save(out_dir / S.ITEM_FACTORS, items)
    np.save(out_dir / S.ITEM_BIAS, bias)
    S.write_ids(out_dir / S.USER_IDS, model.user_ids)
    S.write_ids(out_dir / S.ITEM_IDS, model.item_ids)
    if onnx:
        export_scorer_onnx(items, bias, out_dir / S.CF_SCORER_ONNX)
    meta = {
        "model": "cf-mf", "dim": int(items.shape[1]), "n_users": int(users.shape[0]),
        "n_items": int(items.shape[0]), "score": "user_vector . item_factor + item_bias",
        "onnx": {"file": S.CF_SCORER_ONNX, "input": ONNX_INPUT, "output": ONNX_OUTPUT} if onnx else None,
        "params": {k: v for k, v in model.params().items() if isinstance(v, (int, float, str, bool, type(None)))},
    }
    (out_dir / S.CF_META).write_text(json.dumps(meta, indent=2))
    return out_dir


class OnnxCFScorer:
    """Torch-free CF scorer: onnxruntime over the exported graph."""

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path)
        if path.is_dir():
            path = path / S.CF_SCORER_ONNX
        if not path.exists():
            raise FileNotFoundError(f"{path}: CF ONNX scorer missing")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def scores(self, user_vectors: np.ndarray) -> np.ndarray:
        """``[b, d]`` float32 user vectors -> ``[b, n_items]`` scores."""
        x = np.atleast_2d(np.asarray(user_vectors, dtype=np.float32))
        return self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0]
