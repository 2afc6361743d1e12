package dbusrt

// RawCalls counts the calls Invoke sent raw.
var RawCalls = &rawCalls
