"""Train a demo digits network and write its shipped checkpoint to hwgen/data/digits_<model>.pt.

Run from the repo root: ``python scripts/train_digits.py --model mlp|conv|mnist784|rnn``. The
demo loads the result through the same ``module:attribute --weights`` path a user's model takes.
For ``rnn`` it also prints the accuracy of the same trained weights with the recurrent weights
and bias zeroed (``digits.rnn_without_recurrence``), the figure that shows the memory matters.
"""

import argparse
import time

import torch

from hwgen import digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(digits.MODELS), default="mlp")
    parser.add_argument("--epochs", type=int, help="default: the model's own")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = digits.MODELS[args.model]
    start = time.perf_counter()
    model, accuracy = digits.train(args.model, args.epochs, args.seed)
    seconds = time.perf_counter() - start
    spec.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(digits.state_dict_to_ship(args.model, model), spec.checkpoint)
    print(f"{args.model}: test accuracy (float, snnTorch): {accuracy:.4f}; wrote {spec.checkpoint} "
          f"(trained in {seconds:.0f} s)")
    if args.model == "rnn":
        without = digits.heldout_accuracy(digits.rnn_without_recurrence(model), spec.load_split())
        print(f"rnn: test accuracy with the recurrent weights and bias zeroed (float, snnTorch, "
              f"no retraining): {without:.4f}")


if __name__ == "__main__":
    main()
