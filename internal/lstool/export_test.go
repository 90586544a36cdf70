package lstool

// OverlapCheck is overlapCheck, for the benchmarks.
var OverlapCheck = overlapCheck
