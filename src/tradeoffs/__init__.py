"""Production AI Trade-offs: the helper library behind the course kit's labs.

One module per concern; ``docs/architecture.md`` is the map (layers, who calls whom, where the tests
are). Base floor: ``files``, ``threads``, ``checks``, ``course``, ``whatif``, ``workshop``, ``measure``,
``pricing``, ``queueing``, ``loadtest``, ``batchjob``, ``public_data``. Data and models: ``data``,
``models``, ``plots``. Notebook plumbing: ``notebook``, ``runner``. Lab concerns: ``metering`` (lab 1),
``maintainability`` (lab 2), ``noise``, ``curves``, ``ticket_features`` (lab 3), ``capacity`` and
``serve`` (lab 4), ``finetune`` (lab 5), ``oversight`` (lab 6). Course infrastructure: ``grading``,
``cli``. Import the module you need; nothing heavy loads on import.
"""

__version__ = "0.1.0"
