// Tests for the Export module.
