"""The publisher for product engineers: ``Publisher`` (validate at the edge, key by account,
dead-letter what is invalid) and the JSONL event-file reader used by ``preempt publish``."""
