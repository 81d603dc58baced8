"""Hand-written Verilog a build compiles next to the generated design (README.md here).

Installed as ``hwgen.rtl_templates`` so the ``.v`` files ship in the wheel; code finds
them with ``importlib.resources.files("hwgen.rtl_templates")``.
"""
