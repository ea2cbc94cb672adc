"""Collaborative filtering: matrix factorisation in PyTorch Lightning, early-stopped on validation NDCG@10.

``score(u, i) = <p_u, q_i> + b_i``. Two losses:

* ``softmax`` (default): sampled softmax over the positive item and ``n_negatives`` items shared by
  the whole batch, drawn from popularity^``neg_alpha`` with a log-Q correction (``n_negatives=0`` is
  the exact softmax over the catalogue, fine for small catalogues);
* ``bpr``: pairwise logistic loss with ``n_negatives`` uniform negatives per positive.

Negatives are drawn as tensors for the whole batch (no per-row loops). Training pairs come from an
:class:`~torch.utils.data.IterableDataset` that yields ready batches, so a sharded / streaming
reader can replace :class:`ShuffledPairs` without touching the model. Validation = the same temporal
rule as the test split, applied inside train (:func:`smartreco.evaluation.split.validation_split`);
the best epoch found there is then refitted on all of train (``refit=True``).

Tuning on MovieLens ml-latest-small (ARCHITECTURE §5 protocol, validation split for selection): sampled
softmax with 2048 popularity-proportional negatives (log-Q corrected), L2 1e-3, trained on positives
only, dim 64 -> NDCG@10 0.106 on test (MostPopular 0.080); BPR (4-32 negatives) 0.079-0.098; uniform
negatives or training on all ratings were worse. The exact softmax (``n_negatives=0``) is too slow
on 2 shared cores for this catalogue.

Which interactions to train on depends on the data, so ``train_on="auto"`` (default) fits both
"positives" and "all" on the validation split and keeps the better one. On the synthetic shop
(``--source synthetic``: 14% positives, ~5 positive pairs per user, while views/clicks are also drawn
by latent affinity) positives-only CF was no better than MostPopular (test NDCG@10 0.0178 = 0.0178,
validation 0.012) and all interactions gave validation 0.040 / test 0.048; on MovieLens, where low
ratings are real dislikes, validation keeps "positives".
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader, IterableDataset

from smartreco.data.canonical import positive_mask
from smartreco.errors import DataError
from smartreco.evaluation import metrics as M
from smartreco.evaluation.split import validation_split
from smartreco.models.base import InteractionMatrix, Recommender, TrainData

VAL_METRIC = "val_ndcg10"
LOSSES = ("softmax", "bpr")
TRAIN_ON = ("auto", "positives", "all")
#: what ``train_on="auto"`` tries on validation, in tie-break order; without validation it uses the first
AUTO_TRAIN_ON = ("positives", "all")


@dataclass
class CFConfig:
    """Hyper-parameters (logged to MLflow through :meth:`CFRecommender.params`)."""

    # defaults = the best of a ~25-minute validation sweep on MovieLens (see the module docstring)
    dim: int = 64
    loss: str = "softmax"
    n_negatives: int = 2048  # softmax: shared negatives per batch (0 = full softmax); bpr: per positive
    neg_alpha: float = 1.0  # negative sampling ~ (popularity + 1)**alpha (0 = uniform), log-Q corrected
    temperature: float = 1.0
    lr: float = 5e-3
    reg: float = 1e-3  # L2 on the batch's user/item rows, per example
    batch_size: int = 1024
    max_epochs: int = 60
    patience: int = 4
    min_epochs: int = 2
    train_on: str = "auto"  # "positives", "all" interactions as implicit pairs, or "auto" (better on validation)
    init_std: float = 0.05
    refit: bool = True
    seed: int = 42
    progress: bool = True
    num_threads: int | None = None  # torch intra-op threads while fitting (1 is fastest on small data)

    def check(self) -> CFConfig:
        if self.loss not in LOSSES:
            raise DataError(f"cf.loss: expected one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.train_on not in TRAIN_ON:
            raise DataError(f"cf.train_on: expected one of {', '.join(TRAIN_ON)}, got {self.train_on!r}")
        if self.loss == "bpr" and self.n_negatives < 1:
            raise DataError("cf.n_negatives: bpr needs at least one negative per positive")
        if self.dim < 1 or self.batch_size < 1 or self.max_epochs < 1:
            raise DataError("cf: dim, batch_size and max_epochs must be positive")
        return self


# ------------------------------------------------------------------------------------------------ data


class ShuffledPairs(IterableDataset):
    """(user, item) index pairs, reshuffled each epoch from ``seed + epoch``, yielded as whole batches.

    Yielding batches (``DataLoader(batch_size=None)``) keeps the per-pair Python cost at zero; any other
    iterable of ``{"user": LongTensor, "item": LongTensor}`` (a sharded parquet reader, a stream) fits.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, batch_size: int, seed: int) -> None:
        self.users = torch.as_tensor(np.asarray(users, dtype=np.int64))
        self.items = torch.as_tensor(np.asarray(items, dtype=np.int64))
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.users), generator=gen)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield {"user": self.users[idx], "item": self.items[idx]}


class UserBatches(IterableDataset):
    """Positions into the validation user list, in fixed batches."""

    def __init__(self, n: int, batch_size: int = 1024) -> None:
        self.n, self.batch_size = n, batch_size

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        for start in range(0, self.n, self.batch_size):
            yield torch.arange(start, min(self.n, start + self.batch_size))


@dataclass
class ValidationData:
    """Validation users (rows of the user index), items to mask (seen in inner train) and targets."""

    rows: np.ndarray
    seen: sp.csr_matrix  # (n_val_users, n_items)
    targets: sp.csr_matrix  # (n_val_users, n_items), validation positives not seen in inner train
    k: int = M.DEFAULT_K

    @property
    def n_targets(self) -> np.ndarray:
        return np.diff(self.targets.indptr)


class PairDataModule(pl.LightningDataModule):
    """Training pairs + validation users; swap :class:`ShuffledPairs` for a streaming dataset at scale."""

    def __init__(self, pairs: ShuffledPairs, validation: ValidationData | None = None) -> None:
        super().__init__()
        self.pairs = pairs
        self.validation = validation

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.pairs, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        n = 0 if self.validation is None else len(self.validation.rows)
        return DataLoader(UserBatches(n), batch_size=None, num_workers=0)


# ----------------------------------------------------------------------------------------------- model


class MFModule(pl.LightningModule):
    """User/item embeddings + item bias; sampled-softmax or BPR loss; NDCG@10 validation."""

    def __init__(self, n_users: int, n_items: int, config: dict, item_popularity: np.ndarray | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["item_popularity"])
        cfg = CFConfig(**config)
        self.cfg = cfg
        self.n_items = n_items
        self.user_emb = torch.nn.Embedding(n_users, cfg.dim)
        self.item_emb = torch.nn.Embedding(n_items, cfg.dim)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))
        torch.nn.init.normal_(self.user_emb.weight, std=cfg.init_std)
        torch.nn.init.normal_(self.item_emb.weight, std=cfg.init_std)
        pop = np.ones(n_items) if item_popularity is None else np.asarray(item_popularity, dtype=np.float64)
        probs = np.power(np.maximum(pop, 0.0) + 1.0, cfg.neg_alpha)
        probs = probs / probs.sum()
        self.register_buffer("neg_probs", torch.as_tensor(probs, dtype=torch.float32), persistent=False)
        self.register_buffer("log_q", torch.log(torch.as_tensor(probs, dtype=torch.float32)), persistent=False)
        self.validation: ValidationData | None = None
        self._gen = torch.Generator().manual_seed(cfg.seed + 1)
        self._val_sum = 0.0
        self._val_n = 0

    # scoring ---------------------------------------------------------------------------------------
    def forward(self, users: torch.Tensor) -> torch.Tensor:
        """Scores over all items for user indices: ``(len(users), n_items)``."""
        return self.user_emb(users) @ self.item_emb.weight.T + self.item_bias

    def _sample(self, shape: tuple[int, ...]) -> torch.Tensor:
        if self.cfg.neg_alpha == 0.0:
            return torch.randint(0, self.n_items, shape, generator=self._gen)
        n = int(np.prod(shape))
        return torch.multinomial(self.neg_probs, n, replacement=True, generator=self._gen).view(shape)

    # training --------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        users, pos = batch["user"], batch["item"]
        u = self.user_emb(users)
        cfg = self.cfg
        if cfg.loss == "bpr":
            neg = self._sample((len(users), cfg.n_negatives))
            s_pos = (u * self.item_emb(pos)).sum(-1) + self.item_bias[pos]
            s_neg = torch.einsum("bd,bkd->bk", u, self.item_emb(neg)) + self.item_bias[neg]
            loss = -torch.nn.functional.logsigmoid(s_pos[:, None] - s_neg).mean()
            reg_rows = [u, self.item_emb(pos), self.item_emb(neg).reshape(-1, cfg.dim)]
        elif cfg.n_negatives <= 0:  # exact softmax over the catalogue
            logits = (u @ self.item_emb.weight.T + self.item_bias) / cfg.temperature
            loss = torch.nn.functional.cross_entropy(logits, pos)
            reg_rows = [u, self.item_emb(pos)]
        else:  # sampled softmax: shared negatives, log-Q correction, accidental hits masked
            neg = self._sample((cfg.n_negatives,))
            v_pos, v_neg = self.item_emb(pos), self.item_emb(neg)
            s_pos = (u * v_pos).sum(-1) + self.item_bias[pos] - self.log_q[pos]
            s_neg = u @ v_neg.T + self.item_bias[neg] - self.log_q[neg]
            s_neg = s_neg.masked_fill(neg[None, :] == pos[:, None], float("-inf"))
            logits = torch.cat([s_pos[:, None], s_neg], dim=1) / cfg.temperature
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(users), dtype=torch.long))
            reg_rows = [u, v_pos]
        if cfg.reg > 0:
            loss = loss + cfg.reg * sum((r * r).sum() for r in reg_rows) / len(users)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(users))
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr)

    # validation ------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_sum, self._val_n = 0.0, 0

    def validation_step(self, positions: torch.Tensor, batch_idx: int) -> None:
        val = self.validation
        if val is None or len(positions) == 0:
            return
        pos = positions.numpy()
        users = torch.as_tensor(val.rows[pos])
        scores = self(users)
        seen = val.seen[pos].tocoo()
        scores[torch.as_tensor(seen.row, dtype=torch.long), torch.as_tensor(seen.col, dtype=torch.long)] = -torch.inf
        top = torch.topk(scores, min(val.k, self.n_items), dim=1).indices.numpy()
        rows = np.repeat(np.arange(len(pos)), top.shape[1])
        hits = np.asarray(val.targets[pos][rows, top.ravel()]).reshape(top.shape) > 0
        ndcg = M.ndcg_at_k(hits, val.n_targets[pos])
        self._val_sum += float(ndcg.sum())
        self._val_n += len(pos)

    def on_validation_epoch_end(self) -> None:
        if self._val_n:
            self.log(VAL_METRIC, self._val_sum / self._val_n, prog_bar=True)

    # export ----------------------------------------------------------------------------------------
    def factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(user_factors, item_factors, item_bias)`` as float32 numpy arrays."""
        with torch.no_grad():
            return (self.user_emb.weight.detach().numpy().astype(np.float32).copy(),
                    self.item_emb.weight.detach().numpy().astype(np.float32).copy(),
                    self.item_bias.detach().numpy().astype(np.float32).copy())


class _KeepBest(pl.Callback):
    """Keeps the weights of the best validation epoch in memory and restores them at the end."""

    def __init__(self) -> None:
        self.best_score = -math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.history: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or VAL_METRIC not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[VAL_METRIC])
        self.history.append(score)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, trainer.current_epoch + 1
            self.best_state = copy.deepcopy(module.state_dict())

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


# ------------------------------------------------------------------------------------------- training


def _pairs(interactions: pd.DataFrame, users: pd.Index, items: pd.Index, train_on: str) -> tuple[np.ndarray, ...]:
    """Unique (user row, item row) training pairs."""
    df = interactions[positive_mask(interactions)] if train_on == "positives" else interactions
    mat = InteractionMatrix.build(df, items.to_numpy(), users.to_numpy()).matrix.tocoo()
    return mat.row.astype(np.int64), mat.col.astype(np.int64)


def _validation(inner: pd.DataFrame, val: pd.DataFrame, users: pd.Index, items: pd.Index) -> ValidationData | None:
    seen = InteractionMatrix.build(inner, items.to_numpy(), users.to_numpy()).matrix.tocsr()
    seen.data[:] = 1.0
    targets = InteractionMatrix.build(val, items.to_numpy(), users.to_numpy(), positives_only=True).matrix.tocsr()
    targets = (targets - targets.multiply(seen)).tocsr()
    targets.eliminate_zeros()
    rows = np.flatnonzero(np.diff(targets.indptr) > 0)
    if rows.size == 0:
        return None
    return ValidationData(rows=rows, seen=seen[rows].tocsr(), targets=targets[rows].tocsr())


def train_mf(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    config: CFConfig,
    *,
    validation: ValidationData | None = None,
    epochs: int | None = None,
) -> tuple[MFModule, _KeepBest]:
    """Fit an :class:`MFModule` on index pairs; early-stopped on ``validation`` when given, else ``epochs``."""
    pl.seed_everything(config.seed, workers=True, verbose=False)
    pop = np.bincount(items, minlength=n_items)
    module = MFModule(n_users, n_items, asdict(config), item_popularity=pop)
    module.validation = validation
    keep = _KeepBest()
    callbacks: list[pl.Callback] = [keep]
    if validation is not None:
        callbacks.append(pl.callbacks.EarlyStopping(monitor=VAL_METRIC, mode="max", patience=config.patience))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs or config.max_epochs,
        min_epochs=min(config.min_epochs, epochs or config.max_epochs),
        deterministic=True, logger=False, enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=config.progress, num_sanity_val_steps=0, callbacks=callbacks,
        limit_val_batches=1.0 if validation is not None else 0,
    )
    dm = PairDataModule(ShuffledPairs(users, items, config.batch_size, config.seed), validation)
    threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        _fit_quietly(trainer, module, dm)
    finally:
        torch.set_num_threads(threads)
    module.eval()
    return module, keep


def _fit_quietly(trainer: pl.Trainer, module: MFModule, dm: PairDataModule) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*IterableDataset.*")
        warnings.filterwarnings("ignore", message=".*GPU available.*")
        trainer.fit(module, datamodule=dm)


@dataclass
class CFRecommender(Recommender):
    """Lightning MF behind the :class:`Recommender` contract (fit on TrainData, score user rows)."""

    config: CFConfig = field(default_factory=CFConfig)
    validate: bool = True
    name: str = "cf"

    def __post_init__(self) -> None:
        self.config.check()
        self.module: MFModule | None = None
        self.user_ids: np.ndarray | None = None
        self.item_ids: np.ndarray | None = None
        self.best_epoch: int | None = None
        self.val_history: list[float] = []
        self.train_on: str | None = None  # the interaction set actually used ("auto" resolved)
        self.val_scores: dict[str, float] = {}  # best validation NDCG@10 per tried train_on

    def fit(self, data: TrainData) -> CFRecommender:
        cfg = self.config
        users = pd.Index(data.matrix.user_ids)
        items = pd.Index(data.matrix.item_ids)
        inter = data.interactions
        if inter.empty:
            raise DataError("interactions: empty train set, nothing to fit CF on")
        epochs = cfg.max_epochs
        candidates = AUTO_TRAIN_ON if cfg.train_on == "auto" else (cfg.train_on,)
        self.train_on, self.val_scores = candidates[0], {}
        validation = None
        if self.validate:
            split = validation_split(inter)
            validation = _validation(split.train, split.test, users, items)
        if validation is not None:
            best = None
            for train_on in candidates:  # the same seed for each, so the choice is deterministic
                u, i = _pairs(split.train, users, items, train_on)
                if u.size == 0:
                    continue
                module, keep = train_mf(u, i, len(users), len(items), cfg, validation=validation)
                self.val_scores[train_on] = float(keep.best_score)
                if best is None or keep.best_score > best[0]:
                    best = (keep.best_score, train_on, module, keep, u)
            if best is not None:
                _, self.train_on, module, keep, u = best
                self.best_epoch, self.val_history = keep.best_epoch, keep.history
                epochs = max(1, keep.best_epoch)
                if not cfg.refit:
                    self._finish(module, u, users, items)
                    return self
        u, i = _pairs(inter, users, items, self.train_on)
        if u.size == 0 and cfg.train_on == "auto":  # no positives at all: implicit pairs are all there is
            self.train_on = "all"
            u, i = _pairs(inter, users, items, self.train_on)
        if u.size == 0:
            raise DataError("interactions: no training pairs for CF (no positives?)")
        module, _ = train_mf(u, i, len(users), len(items), cfg, epochs=epochs)
        self._finish(module, u, users, items)
        return self

    def _finish(self, module: MFModule, trained_users: np.ndarray, users: pd.Index, items: pd.Index) -> None:
        # users with no training pair keep their random init: zero them so they fall back to the bias
        untouched = np.ones(len(users), dtype=bool)
        untouched[trained_users] = False
        with torch.no_grad():
            module.user_emb.weight[torch.as_tensor(untouched)] = 0.0
        self.module = module
        self.user_ids = users.to_numpy()
        self.item_ids = items.to_numpy()

    def _require(self) -> MFModule:
        if self.module is None:
            raise RuntimeError("CFRecommender: call fit() first")
        return self.module

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        module = self._require()
        with torch.no_grad():
            return module(torch.as_tensor(np.asarray(user_rows, dtype=np.int64))).numpy().astype(np.float32)

    def factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._require().factors()

    def export(self, out_dir, onnx: bool = True):
        """Write factors, biases, id maps and the ONNX scorer (see :mod:`smartreco.models.onnx_export`)."""
        from smartreco.models.onnx_export import export_cf

        return export_cf(self, out_dir, onnx=onnx)

    def params(self) -> dict:
        return {**asdict(self.config), "best_epoch": self.best_epoch, "validate": self.validate,
                "train_on_selected": self.train_on,
                **{f"val_ndcg10_{name}": round(score, 5) for name, score in self.val_scores.items()}}


def make_cf(**params) -> CFRecommender:
    """Registry factory: ``make_cf(dim=128, loss="bpr")`` -> CFRecommender with those config fields."""
    validate = params.pop("validate", True)
    return CFRecommender(CFConfig(**params), validate=validate)
