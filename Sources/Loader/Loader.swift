// The Loader module.
