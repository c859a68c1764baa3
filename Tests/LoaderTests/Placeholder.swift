// Tests for the Loader module.
