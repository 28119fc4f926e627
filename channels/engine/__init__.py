"""The delivery engine: the machinery that turns a dispatch into sent messages.

One module per stage (docs/architecture.md): ``queue`` (task names, hints), ``fanout``
(deliveries of a dispatch), ``claims`` (a batch's rows), ``messages`` (rendering), ``pacing``
(rate limit, circuit breaker), ``outcomes`` (recording), ``batches`` (the send loop),
``journal`` (what a batch handed over), ``sweeper`` (recovery), ``mime`` (email bytes) and
``stats`` (worker-side metrics). ``channels.services`` keeps the writes that the admin, the API
and the commands call.
"""
