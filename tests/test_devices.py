"""The memory-fit estimate: block counts per aspect ratio and placement."""

import numpy as np

from hwgen.devices import DP16KD, EBR, SPRAM, fit, memories
from hwgen.testing import random_quant_network


def test_block_counts_pick_the_best_aspect_ratio():
    assert EBR.blocks(256, 16) == 1 and EBR.blocks(2048, 2) == 1
    assert EBR.blocks(4096, 8) == 8  # 4096 x 8 = 32 kbit = 8 x 4 kbit
    assert EBR.blocks(64, 56) == 4  # shallow and wide: 4 x (256 x 16)
    assert SPRAM.blocks(16384, 16) == 1 and SPRAM.blocks(16384, 17) == 2
    assert DP16KD.blocks(1024, 18) == 1 and DP16KD.blocks(512, 72) == 2


def test_dense_memories_and_verdicts():
    net = random_quant_network([784, 128, 10], weight_bits=8, state_bits=12)
    mems = {(m.layer, m.role): m for m in memories(net, parallel=4)}
    assert (mems["fc0", "weights"].depth, mems["fc0", "weights"].width) == (784 * 32, 32)
    assert mems["fc0", "membranes"].depth == 32
    ice = fit(net, 4, "ice40up5k")
    assert ice.fits and ice.spram_needed >= 1  # the 800 kbit weight ROM goes to SPRAM
    ecp5 = fit(net, 4, "ecp5-25f")
    assert ecp5.fits and ecp5.blocks_needed == sum(p["blocks"] for p in ecp5.placement)


def test_a_model_too_big_for_a_device_says_no():
    net = random_quant_network([2048, 1024, 10], weight_bits=8)
    assert not fit(net, 8, "ecp5-25f").fits
    assert not fit(net, 8, "ice40up5k").fits
