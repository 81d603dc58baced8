"""Train the demo's digits MLP and write the shipped checkpoint hwgen/data/digits_mlp.pt.

Run from the repo root: ``python scripts/train_digits.py``. The demo loads the result
through the same ``module:attribute --weights`` path a user's model takes.
"""

import argparse

import torch

from hwgen import digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model, accuracy = digits.train(args.epochs, args.seed)
    digits.CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), digits.CHECKPOINT)
    print(f"test accuracy (float, snnTorch): {accuracy:.4f}; wrote {digits.CHECKPOINT}")


if __name__ == "__main__":
    main()
