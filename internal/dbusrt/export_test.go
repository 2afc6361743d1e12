// SPDX-License-Identifier: Apache-2.0

package dbusrt

// RawCalls counts the calls Invoke sent raw.
var RawCalls = &rawCalls

// QueuedProps counts the PropertiesChanged signals QueueProperty queued raw.
var QueuedProps = &queuedProps

// SimpleReplies counts the replies encoded by internal/wire.
var SimpleReplies = &simpleReplies
