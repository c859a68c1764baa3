// Tests for the Integration module.
