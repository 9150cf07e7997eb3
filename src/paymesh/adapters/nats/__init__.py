"""NATS JetStream adapters: the event bus across processes, and the shared fraud feed."""
