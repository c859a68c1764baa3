// Tests for the Table module.
