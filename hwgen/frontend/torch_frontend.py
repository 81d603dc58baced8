"""PyTorch / snnTorch frontend: load a model, check it is something hwgen can build, and
turn it into the float IR (``hwgen.ir.Network``).

What is accepted is deliberately narrow: a single-timestep forward, in the snnTorch
``init_hidden=True`` convention, that is a graph of synaptic layers (``nn.Linear`` or
``nn.Conv2d``), each directly followed by an snnTorch ``Leaky``, ``RLeaky``, ``Synaptic`` or
``RSynaptic`` (a recurrent neuron's connection to itself becomes a delayed second input of
its layer); with ``nn.Flatten``, ``nn.MaxPool2d`` / ``nn.AvgPool2d`` on spikes, ``x + y`` of
spike tensors (``SpikeSum``), and ``nn.BatchNorm2d`` folded into the convolution it follows.
A plain chain (``nn.Sequential``) imports as a chain. Everything else is refused with a
message naming the layer, because silently approximating a model would break the promise
that the hardware reproduces the trained network spike for spike (docs/torch.md).

This module is only the public entry point; the work is split by job, each module importing
only the ones before it:

- ``torch_load``: ``load_torch_model``, the model spec / ``torch.save`` file / ``--weights``
  state_dict -> an ``nn.Module`` in eval mode;
- ``torch_trace``: the module -> its calls in evaluation order, each with the calls it takes
  (``nn.Sequential`` walk or torch.fx trace);
- ``torch_convert``: ``import_torch``, those calls -> IR nodes and edges (BatchNorm and
  AvgPool folding, snnTorch neurons -> ``LIFNeurons``, recurrence, shape tracking).
"""

from __future__ import annotations

from .torch_convert import SUPPORTED, import_torch
from .torch_load import SURROGATE_PICKLE_HINT, load_torch_model
from .torch_trace import SEQUENTIAL_HINT

__all__ = ["load_torch_model", "import_torch", "SUPPORTED", "SEQUENTIAL_HINT",
           "SURROGATE_PICKLE_HINT"]
