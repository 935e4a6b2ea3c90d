"""Training: an MLP, mini-batch Adam, optional ``torch.distributed`` data parallelism.

One code path serves one process and ``torchrun``: batches come from
``torch.utils.data.DistributedSampler`` (``num_replicas=1`` without a process group), reshuffled each
epoch with ``set_epoch``, and each of the ``W`` processes takes ``batch_size / W`` examples of every
global batch; ``DistributedDataParallel`` averages the gradients. The global batch of step ``k`` is
then the same set of examples for any ``W`` (when ``W`` divides the batch size and the number of
training examples, otherwise the sampler pads with repeated examples), so with dropout off a
``W``-process run gives the single-process result up to float rounding. Dropout masks are drawn per
process, so with dropout the runs agree in distribution only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from logitkit.experiments._spec import TrainConfig

__all__ = ["DistInfo", "TrainedOutputs", "dist_info", "make_mlp", "predict", "train"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """The process group's rank and size (0 and 1 without ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def init_distributed(device: str) -> DistInfo:
    """Join the ``torchrun`` process group (gloo on CPU, nccl on CUDA) when ``WORLD_SIZE > 1``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist_info()


def make_mlp(in_features: int, out_features: int, hidden: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    model.eval()
    out = [model(x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.zeros(0)


@dataclass
class TrainedOutputs:
    logits_val: np.ndarray
    logits_test: np.ndarray
    history: dict
    best_epoch: int


def train(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    num_outputs: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig,
    seed: int,
    *,
    x_test: torch.Tensor,
    val_score: Callable[[np.ndarray], float] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> TrainedOutputs:
    """Train an MLP with ``loss_fn`` for one seed; return validation / test logits and the history.

    ``val_score(logits_val) -> float`` (higher is better) is recorded per epoch and, with
    ``config.select == "best"``, picks the epoch whose weights are kept.
    """
    info = dist_info()
    if config.batch_size % info.world_size:
        raise ValueError(
            f"batch_size: expected a multiple of the number of processes {info.world_size}, "
            f"got {config.batch_size}"
        )
    torch.manual_seed(seed)
    model = make_mlp(x_train.shape[1], num_outputs, config.hidden, config.dropout).to(x_train.device)
    # Each process draws its own dropout masks; the initial weights above are the same everywhere.
    torch.manual_seed(seed * 1_000_003 + info.rank)
    net: nn.Module = model
    if info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = DistributedSampler(
        range(len(y_train)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed
    )
    local_batch = config.batch_size // info.world_size
    history: dict[str, list[float]] = {"train_loss": [], "val": []}
    best, best_epoch, best_state, since_best = -math.inf, config.epochs - 1, None, 0
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.long, device=x_train.device)
        net.train()
        total, count = torch.zeros((), dtype=torch.float64), 0
        for start in range(0, len(order), local_batch):
            idx = order[start : start + local_batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.detach().double().cpu() * len(idx)
            count += len(idx)
        stats = torch.stack([total, torch.tensor(float(count), dtype=torch.float64)])
        if info.world_size > 1:  # nccl reduces device tensors only
            stats = stats.to(x_train.device)
            dist.all_reduce(stats)
            stats = stats.cpu()
        history["train_loss"].append(float(stats[0] / stats[1]))
        if val_score is not None:
            score = float(val_score(predict(model, x_val).cpu().numpy()))
            history["val"].append(score)
            if config.select == "best" and score > best:
                best, best_epoch, since_best = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
        if on_epoch is not None:
            on_epoch(epoch)
        if config.select == "best" and config.patience is not None and since_best >= config.patience:
            break
    if config.select == "best" and best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(history["train_loss"]) - 1
    return TrainedOutputs(
        logits_val=predict(model, x_val).cpu().numpy(),
        logits_test=predict(model, x_test).cpu().numpy(),
        history=history,
        best_epoch=best_epoch,
    )
