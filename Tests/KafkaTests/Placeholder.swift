// Tests for the Kafka module.
