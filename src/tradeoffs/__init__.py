"""Production AI Trade-offs: the helper library behind the course kit's labs.

One module per concern (see ``DESIGN.md``): ``models``, ``measure``, ``serve``, ``metering``,
``pricing``, ``queueing``, ``noise``, ``curves``, ``ticket_features``, ``maintainability``, ``finetune``,
``oversight``, ``data``, ``plots``, ``notebook`` and ``cli``. Import the module you need; nothing heavy
loads on import.
"""

__version__ = "0.1.0"
