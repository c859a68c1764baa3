// The Export module.
