"""Sequential recommenders in PyTorch behind the model contract.

``config`` holds their settings and presets, ``base`` the shared fitting, scoring, state and
explanations, ``models`` the registered models; ``batching``, ``training``, ``layers``,
``sasrec``, ``gru`` and ``bst`` the windows, training loop and networks; ``explain`` turns
per-step weights into reasons.
"""
