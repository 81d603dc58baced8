"""The accelerator of a network: its units assembled into ``hwgen_top`` (``top``), the board
top around it with the host link (``board_top``), and several networks in one design for the
stress tests (``batch_top``). Above the layer kinds, which build the units from
``hwgen.hardware``'s engines."""
