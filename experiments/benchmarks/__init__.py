"""The sections of ``python -m experiments.benchmark`` and the command that runs them.

``run`` (the command: sections in, one report out), ``cli`` (options),
``render`` (the printed report); one module per section: ``simulator``,
``evaluation``, ``training``, ``peers``, ``learning`` (+ ``learning_table``);
shared by the sections and importing none of them: ``timing``, ``targets``,
``machine``.
"""
