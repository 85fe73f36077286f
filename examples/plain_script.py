"""What a plain PyTorch script would do at scale: the benchmark's baseline for the whole command.

It draws tutorial 1's kind of data (integers in [1, 100], y = x @ w) straight into float32 and trains
the dot product with MSE and SGD by slicing batches: nothing else, not even a report.
    python examples/plain_script.py --num_samples 2000000 --num_features 256 --batch_size 65536
"""

import argparse

import torch
from torch.nn import functional as F

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--num_samples", type=int, default=2_000_000)
parser.add_argument("--num_features", type=int, default=256)
parser.add_argument("--batch_size", type=int, default=65536)
parser.add_argument("--max_epochs", type=int, default=10)
parser.add_argument("--lr", type=float, default=1e-7)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

generator = torch.Generator().manual_seed(args.seed)
x = torch.randint(1, 101, (args.num_samples, args.num_features), dtype=torch.float32, generator=generator)
y = x @ torch.arange(1.0, args.num_features + 1)
w = torch.randn(args.num_features, requires_grad=True)
optimizer = torch.optim.SGD([w], lr=args.lr)
for _ in range(args.max_epochs):
    for i in range(0, args.num_samples, args.batch_size):
        loss = F.mse_loss(x[i : i + args.batch_size] @ w, y[i : i + args.batch_size])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
print(f"loss {loss.item():.4g}")
