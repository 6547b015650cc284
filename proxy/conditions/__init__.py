"""CEL conditions (`when:`) over a typed activation: compiled once per rules load,
evaluated per call, an error denies."""
