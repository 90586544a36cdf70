package tree

// RawValue is rawValue, for tests.
var RawValue = rawValue
