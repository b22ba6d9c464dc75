"""What crosses between processes: the inbound message, its signature, who may send, and the broker-side
acknowledgements."""
