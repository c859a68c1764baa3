// Tests for the AWSWire module.
