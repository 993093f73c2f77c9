"""What every stage and the service stand on: the listing contract, the model's parts, how
models are evaluated, compiled, explained and registered, the config and where runs go.

Kernel modules import only each other; no stage and not the service (tests/unit/test_layers.py
checks). A saved model loads with this package's model modules alone, so this file imports
nothing."""
