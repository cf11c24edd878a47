"""The rule language: typed rule models, one evaluator per kind, the engine and the default pack.

Pure computation: never imports Faust or Kafka and never reads a clock.
"""
