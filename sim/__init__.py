"""cocotb testbenches for the generated hardware (run through ``hwgen.simulate``)."""
