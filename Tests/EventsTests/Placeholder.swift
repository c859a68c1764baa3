// Tests for the Events module.
