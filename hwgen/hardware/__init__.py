"""The hardware stage: Amaranth components on spike-token streams (docs/hardware.md).

Engines and remap units (``dense``, ``conv``, ``pool``, ``lanes``, ``spike_queue``,
``memories``, ``readout``, ``tokens``) know nothing of networks; the layer kinds
(``hwgen.kinds``) build them. ``top`` assembles a network's units into ``hwgen_top``;
``board_top`` wraps that for a board. This package imports none of its modules, so that
the engines can be imported below the kinds and ``top`` above them.
"""
