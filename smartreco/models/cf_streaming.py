"""CF at 1M users x 10M items: sharded (user, item) pairs, an IterableDataset over them, and matrix
factorisation with sparse embeddings + SparseAdam, resumable mid-epoch.

Why not :class:`smartreco.models.cf.MFModule` as is: it uses dense embeddings and dense Adam, so every
step would touch (and keep Adam moments for) all 11M rows. Here only the rows in a batch get
gradients (``nn.Embedding(sparse=True)``) and :class:`torch.optim.SparseAdam` updates only those
rows, in Lightning's manual optimisation. The scoring rule, the loss (sampled softmax with batch-shared
negatives and log-Q correction, as cf.py) and the export format (user/item factor ``.npy`` + bias + id
parquet, :mod:`smartreco.models.serving_math` names) are the same, so serving cannot tell them apart.

Memory at dim 32: 11M rows x 33 floats = 1.45 GB of weights + 2 SparseAdam moments = 4.4 GB.

1. :func:`build_pairs` maps string ids to rows through the items/users tables and writes one
   ``int32 (m, 2)`` ``.npy`` per interaction shard (memory-mapped when read) + per-row counts.
2. :class:`ShardPairs` yields shuffled batches: shard order and within-shard order from
   ``seed + epoch``; shards split over DDP ranks and DataLoader workers; ``fraction`` of an epoch;
   a cursor (batches done) so a resumed run continues with the very next batch.
3. :func:`train_streaming_mf` runs Lightning with a ``ModelCheckpoint`` every N steps (``last.ckpt``)
   and resumes from it; :func:`export_factors` writes the serving artifacts.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.features.streaming import BATCH_ROWS, id_index, iter_batches, parquet_parts, rows_of
from smartreco.models import serving_math as S

PAIRS_META = "pairs.json"
USER_COUNTS = "user_counts.npy"
ITEM_COUNTS = "item_counts.npy"
LAST_CKPT = "last.ckpt"


# ------------------------------------------------------------------------------------------- pairs
def build_pairs(data_dir: Path | str, out_dir: Path | str, *, batch_rows: int = BATCH_ROWS,
                progress: bool = True) -> dict:
    """``data_dir/{interactions,items,users}`` -> ``out_dir/pairs-NNNNN.npy`` + id maps + counts.

    Every interaction is one implicit pair (cf.py's ``train_on="all"``; repeats count again). Row
    order = the items / users tables' order. Returns the metadata written to ``pairs.json``.
    """
    root, out = Path(data_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = id_index(root / "items", C.ITEM_ID)
    users = id_index(root / "users", C.USER_ID)
    u_count = np.zeros(len(users), np.int64)
    i_count = np.zeros(len(items), np.int64)
    shards = []
    parts = parquet_parts(root / "interactions")
    for n, batch in enumerate(iter_batches(parts, [C.USER_ID, C.ITEM_ID], batch_rows, progress, desc="pair shards")):
        tbl = pa.Table.from_batches([batch])
        pair = np.empty((tbl.num_rows, 2), np.int32)
        pair[:, 0] = rows_of(users, tbl.column(C.USER_ID).combine_chunks(), C.USER_ID)
        pair[:, 1] = rows_of(items, tbl.column(C.ITEM_ID).combine_chunks(), C.ITEM_ID)
        u_count += np.bincount(pair[:, 0], minlength=len(users))
        i_count += np.bincount(pair[:, 1], minlength=len(items))
        name = f"pairs-{n:05d}.npy"
        np.save(out / name, pair)
        shards.append({"file": name, "rows": int(tbl.num_rows)})
    if not shards:
        raise DataError(f"{root / 'interactions'}: no interactions")
    S.write_ids(out / S.USER_IDS, users)
    S.write_ids(out / S.ITEM_IDS, items)
    np.save(out / USER_COUNTS, u_count)
    np.save(out / ITEM_COUNTS, i_count)
    meta = {"n_users": len(users), "n_items": len(items), "n_pairs": int(sum(s["rows"] for s in shards)),
            "shards": shards, "train_on": "all"}
    (out / PAIRS_META).write_text(json.dumps(meta, indent=2))
    return meta


def read_pairs_meta(pairs_dir: Path | str) -> dict:
    path = Path(pairs_dir) / PAIRS_META
    if not path.exists():
        raise DataError(f"{path}: pairs metadata missing (run build_pairs first)")
    return json.loads(path.read_text())


class Cursor:
    """Batches already consumed in the current epoch; shared by the dataset and the module."""

    def __init__(self) -> None:
        self.epoch = 0
        self.batches = 0


class ShardPairs(IterableDataset):
    """Shuffled ``{"user", "item"}`` LongTensor batches over memory-mapped pair shards.

    Each epoch permutes the shard order and each shard's rows from ``seed + epoch``; shards are dealt
    round-robin to DDP ranks (``torch.distributed``) and then to DataLoader workers, so no pair is
    read twice. ``fraction`` < 1 stops the epoch early (benchmarks); ``cursor.batches`` batches are
    skipped at the start (resume). Memory: one shard's permutation at a time.
    """

    def __init__(self, pairs_dir: Path | str, batch_size: int, seed: int = 0, fraction: float = 1.0,
                 cursor: Cursor | None = None) -> None:
        self.dir = Path(pairs_dir)
        self.meta = read_pairs_meta(self.dir)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        if not 0 < fraction <= 1:
            raise DataError(f"fraction: expected 0 < fraction <= 1, got {fraction}")
        self.fraction = float(fraction)
        self.cursor = cursor or Cursor()

    @staticmethod
    def _rank() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _my_shards(self, epoch: int) -> list[dict]:
        shards = self.meta["shards"]
        order = np.random.default_rng([self.seed, epoch]).permutation(len(shards))
        rank, world = self._rank()
        mine = [shards[i] for i in order[rank::world]]
        info = get_worker_info()
        if info is not None:
            mine = mine[info.id::info.num_workers]
        return mine

    def __len__(self) -> int:
        _, world = self._rank()
        rows = self.meta["n_pairs"] / world
        return max(1, math.ceil(rows * self.fraction / self.batch_size))

    def __iter__(self):
        epoch = self.cursor.epoch
        budget = len(self)
        skip = self.cursor.batches
        done = 0
        for shard in self._my_shards(epoch):
            pairs = np.load(self.dir / shard["file"], mmap_mode="r")
            perm = np.random.default_rng([self.seed, epoch, int(shard["file"][6:11])]).permutation(len(pairs))
            for start in range(0, len(perm), self.batch_size):
                if done >= budget:
                    return
                done += 1
                if done <= skip:
                    continue
                idx = np.sort(perm[start:start + self.batch_size])  # sorted reads from the mmap
                chunk = torch.from_numpy(np.asarray(pairs[idx], dtype=np.int64))
                yield {"user": chunk[:, 0], "item": chunk[:, 1]}


# ------------------------------------------------------------------------------------------- model
@dataclass
class StreamingCFConfig:
    """Hyper-parameters of :class:`StreamingMF` (same meaning as :class:`smartreco.models.cf.CFConfig`)."""

    dim: int = 32
    n_negatives: int = 1024  # batch-shared sampled-softmax negatives
    neg_alpha: float = 0.5  # negatives ~ (count + 1) ** alpha, corrected by log-Q
    temperature: float = 1.0
    lr: float = 1e-2
    reg: float = 1e-5
    batch_size: int = 8192
    init_std: float = 0.05
    seed: int = 42

    def check(self) -> StreamingCFConfig:
        if self.dim < 1 or self.batch_size < 1 or self.n_negatives < 1:
            raise DataError("cf_streaming: dim, batch_size and n_negatives must be positive")
        return self


class StreamingMF(pl.LightningModule):
    """``score(u, i) = <p_u, q_i> + b_i`` with sparse embeddings, SparseAdam, manual optimisation."""

    def __init__(self, n_users: int, n_items: int, config: dict, item_counts: np.ndarray | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["item_counts"])
        self.cfg = StreamingCFConfig(**config).check()
        self.automatic_optimization = False
        d = self.cfg.dim
        self.user_emb = torch.nn.Embedding(n_users, d, sparse=True)
        self.item_emb = torch.nn.Embedding(n_items, d, sparse=True)
        self.item_bias = torch.nn.Embedding(n_items, 1, sparse=True)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        with torch.no_grad():
            self.user_emb.weight.normal_(0.0, self.cfg.init_std, generator=gen)
            self.item_emb.weight.normal_(0.0, self.cfg.init_std, generator=gen)
            self.item_bias.weight.zero_()
        counts = np.zeros(n_items) if item_counts is None else np.asarray(item_counts, dtype=np.float64)
        probs = np.power(counts + 1.0, self.cfg.neg_alpha)
        probs /= probs.sum()
        cdf = np.cumsum(probs)
        cdf[-1] = 1.0
        self.register_buffer("neg_cdf", torch.as_tensor(cdf), persistent=False)
        self.register_buffer("log_q", torch.as_tensor(np.log(probs), dtype=torch.float32), persistent=False)
        self.n_items = n_items
        self.cursor = Cursor()
        self.batches_per_epoch = 0  # set by train_streaming_mf from the dataset
        self._gen = torch.Generator().manual_seed(self.cfg.seed + 1)

    def configure_optimizers(self):
        return torch.optim.SparseAdam(list(self.parameters()), lr=self.cfg.lr)

    def _negatives(self) -> torch.Tensor:
        r = torch.rand(self.cfg.n_negatives, generator=self._gen, dtype=torch.float64)
        return torch.searchsorted(self.neg_cdf, r).clamp_(max=self.n_items - 1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        users, pos = batch["user"], batch["item"]
        neg = self._negatives()
        u, v_pos, v_neg = self.user_emb(users), self.item_emb(pos), self.item_emb(neg)
        b_pos, b_neg = self.item_bias(pos).squeeze(-1), self.item_bias(neg).squeeze(-1)
        s_pos = (u * v_pos).sum(-1) + b_pos - self.log_q[pos]
        s_neg = (u @ v_neg.T + b_neg - self.log_q[neg]).masked_fill(neg[None, :] == pos[:, None], float("-inf"))
        logits = torch.cat([s_pos[:, None], s_neg], dim=1) / self.cfg.temperature
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(users), dtype=torch.long))
        if self.cfg.reg > 0:
            loss = loss + self.cfg.reg * ((u * u).sum() + (v_pos * v_pos).sum()) / len(users)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.cursor.batches += 1
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=len(users))
        return loss

    def on_train_epoch_end(self) -> None:
        # Lightning also calls this when max_steps stops mid-epoch: only a finished epoch resets the cursor
        if self.cursor.batches >= self.batches_per_epoch:
            self.cursor.epoch += 1
            self.cursor.batches = 0

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["smartreco_cursor"] = {"epoch": self.cursor.epoch, "batches": self.cursor.batches}
        checkpoint["smartreco_neg_rng"] = self._gen.get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        c = checkpoint.get("smartreco_cursor", {})
        self.cursor.epoch, self.cursor.batches = int(c.get("epoch", 0)), int(c.get("batches", 0))
        if "smartreco_neg_rng" in checkpoint:  # same negatives as an uninterrupted run
            self._gen.set_state(checkpoint["smartreco_neg_rng"])

    def factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(user_factors, item_factors, item_bias)`` float32 (views of the weights, no copy)."""
        with torch.no_grad():
            return (self.user_emb.weight.numpy(), self.item_emb.weight.numpy(),
                    self.item_bias.weight.numpy()[:, 0])


class _CursorData(pl.LightningDataModule):
    def __init__(self, dataset: ShardPairs, workers: int = 0) -> None:
        super().__init__()
        self.dataset, self.workers = dataset, workers

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=None, num_workers=self.workers)


def train_streaming_mf(
    pairs_dir: Path | str,
    config: StreamingCFConfig | None = None,
    *,
    epochs: int = 1,
    fraction: float = 1.0,
    ckpt_dir: Path | str | None = None,
    ckpt_every_steps: int = 0,
    resume: bool = True,
    max_steps: int = -1,
    progress: bool = True,
    trainer_kwargs: dict | None = None,
) -> StreamingMF:
    """Train over the shards; with ``ckpt_dir`` a ``last.ckpt`` is written every ``ckpt_every_steps``
    steps and at the end, and ``resume=True`` continues from it (same next batch, same optimiser state).

    ``trainer_kwargs`` go to ``pl.Trainer`` (e.g. ``accelerator="gpu", devices=8, strategy="ddp"`` on
    a cluster, see docs/scaling.md); the shards split over ranks by themselves.
    """
    cfg = (config or StreamingCFConfig()).check()
    meta = read_pairs_meta(pairs_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    counts = np.load(Path(pairs_dir) / ITEM_COUNTS)
    module = StreamingMF(meta["n_users"], meta["n_items"], asdict(cfg), item_counts=counts)
    data = ShardPairs(pairs_dir, cfg.batch_size, cfg.seed, fraction, cursor=module.cursor)
    module.batches_per_epoch = len(data)
    callbacks: list[pl.Callback] = []
    ckpt_path = None
    if ckpt_dir is not None:
        ckpt_dir = Path(ckpt_dir)
        callbacks.append(pl.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir, filename="step-{step}", save_last=True, save_top_k=0,
            every_n_train_steps=ckpt_every_steps or None, save_on_train_epoch_end=True))
        if resume and (ckpt_dir / LAST_CKPT).exists():
            ckpt_path = str(ckpt_dir / LAST_CKPT)
    kwargs = {"accelerator": "cpu", "devices": 1, **(trainer_kwargs or {})}
    trainer = pl.Trainer(max_epochs=epochs, max_steps=max_steps, logger=False, enable_model_summary=False,
                         enable_checkpointing=ckpt_dir is not None, enable_progress_bar=progress,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks, **kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before.*")
        warnings.filterwarnings("ignore", message=".*not be fault-tolerant.*")
        warnings.filterwarnings("ignore", message=".*manual optimization and every_n_train_steps.*")
        trainer.fit(module, datamodule=_CursorData(data), ckpt_path=ckpt_path)
    return module


def export_factors(module: StreamingMF, pairs_dir: Path | str, out_dir: Path | str) -> Path:
    """The cf.py export layout (:mod:`serving_math` names): factors, bias, id maps, cf_meta.json.

    Users with no training pair get a zero vector (they fall back to the item bias), as in cf.py.
    """
    pairs_dir, out = Path(pairs_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    users, items, bias = module.factors()
    untouched = np.load(pairs_dir / USER_COUNTS) == 0
    users = users.copy() if untouched.any() else users
    users[untouched] = 0.0
    np.save(out / S.USER_FACTORS, users)
    np.save(out / S.ITEM_FACTORS, items)
    np.save(out / S.ITEM_BIAS, bias)
    for name in (S.USER_IDS, S.ITEM_IDS):
        (out / name).write_bytes((pairs_dir / name).read_bytes())
    meta = {"model": "cf_streaming", "config": asdict(module.cfg), "n_users": int(users.shape[0]),
            "n_items": int(items.shape[0]), "score": "dot(user, item) + item_bias"}
    (out / S.CF_META).write_text(json.dumps(meta, indent=2))
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m smartreco.models.cf_streaming --pairs DIR --out DIR [--num-nodes N --accelerator gpu]``:
    the entry point of a PyTorchJob pod (docs/scaling.md); every rank runs the same command."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--pairs", required=True)
    p.add_argument("--out", required=True, help="export folder (written by rank 0)")
    p.add_argument("--ckpt", default=None)
    p.add_argument("--ckpt-every", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--fraction", type=float, default=1.0)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8192)
    p.add_argument("--negatives", type=int, default=1024)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--ddp-backend", default="gloo", help="gloo: sparse gradients (NCCL has no sparse all-reduce)")
    a = p.parse_args(argv)
    kwargs: dict = {"accelerator": a.accelerator, "devices": 1, "num_nodes": a.num_nodes}
    if a.num_nodes > 1:
        from pytorch_lightning.strategies import DDPStrategy

        kwargs["strategy"] = DDPStrategy(process_group_backend=a.ddp_backend)
    cfg = StreamingCFConfig(dim=a.dim, batch_size=a.batch_size, n_negatives=a.negatives)
    module = train_streaming_mf(a.pairs, cfg, epochs=a.epochs, fraction=a.fraction, ckpt_dir=a.ckpt,
                                ckpt_every_steps=a.ckpt_every, trainer_kwargs=kwargs)
    if module.global_rank == 0:
        export_factors(module, a.pairs, a.out)


if __name__ == "__main__":
    main()
