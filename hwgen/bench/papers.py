"""Published figures shown as context rows: paper numbers on other devices, not measured here."""

from __future__ import annotations

ROWS: list[dict] = [
    {
        "work": "Spiker+ (Carpegna et al., IEEE TETC 2024)",
        "model": "MNIST 784-128-10 LIF",
        "platform": "Xilinx FPGA",
        "accuracy": 0.9385,
        "logic": "7,612 logic cells + 18 BRAM",
        "latency_us": 780.0,
        "note": "paper figure on another device; MNIST itself (hwgen's mnist784 runs on upscaled 8x8 digits)",
    },
    {
        "work": "NIR paper (Pedersen et al., Nat. Commun. 2024), N-MNIST CNN on Speck",
        "model": "N-MNIST CNN (cnn_sinabs.nir)",
        "platform": "SynSense Speck",
        "accuracy": 0.954,
        "logic": None,
        "latency_us": None,
        "note": "paper figure on another platform (lowest of the platforms reported)",
    },
    {
        "work": "NIR paper (Pedersen et al., Nat. Commun. 2024), N-MNIST CNN in Sinabs",
        "model": "N-MNIST CNN (cnn_sinabs.nir)",
        "platform": "Sinabs (GPU/CPU simulation)",
        "accuracy": 0.9847,
        "logic": None,
        "latency_us": None,
        "note": "paper figure on another platform (highest of the platforms reported)",
    },
]
