"""Lab services: everything that changes a lab (its rows, its topics, its processes).

One module per thing a learner acts on: `labs` (create, reset, share, delete), `orders`,
`consumers`, `topics`. Reading is in kafkalab.labs.selectors.
"""
