package dbusrt

// RawCalls counts the calls Invoke sent raw.
var RawCalls = &rawCalls

// QueuedProps counts the PropertiesChanged signals QueueProperty queued raw.
var QueuedProps = &queuedProps
