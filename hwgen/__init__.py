"""hwgen: trained spiking neural networks to FPGA accelerators, proven bit-exact.

Pipeline: frontend -> quantize -> golden -> hardware -> emit -> sim (-> build -> flash).
"""

__version__ = "0.1.0"
