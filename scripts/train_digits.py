"""Train a demo digits network and write its shipped checkpoint to hwgen/data/digits_<model>.pt.

Run from the repo root: ``python scripts/train_digits.py --model mlp|conv|mnist784``. The demo loads
the result through the same ``module:attribute --weights`` path a user's model takes.
"""

import argparse

import torch

from hwgen import digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(digits.MODELS), default="mlp")
    parser.add_argument("--epochs", type=int, help="default: the model's own")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = digits.MODELS[args.model]
    model, accuracy = digits.train(args.model, args.epochs, args.seed)
    spec.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(digits.state_dict_to_ship(args.model, model), spec.checkpoint)
    print(f"{args.model}: test accuracy (float, snnTorch): {accuracy:.4f}; wrote {spec.checkpoint}")


if __name__ == "__main__":
    main()
