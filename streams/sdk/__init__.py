"""The publisher for product engineers: ``Publisher`` (validate at the edge, key by account,
dead-letter what is invalid) and the report line for a bad event in a JSONL file."""
