// SPDX-License-Identifier: Apache-2.0

// Package wire reads and writes the D-Bus wire format directly, without
// godbus and without reflection.
//
// It exists for the controller's fast path: signals arriving on a peer
// connection are framed (FrameSize), their header is parsed (Parse), a few
// strings of the body are read in place (Reader), the rest of the body is
// validated and re-aligned into a new body (Copy, Writer) and a new signal is
// built around it (AppendSignal). Everything Copy and Parse accept is valid
// by the rules of the D-Bus specification, so that a message built from it is
// never refused by the message bus.
//
// Output is always little endian; input may be in either byte order.
package wire

import (
	"errors"
	"strconv"
)

// Message types (the second byte of a message).
const (
	TypeMethodCall   = 1
	TypeMethodReturn = 2
	TypeError        = 3
	TypeSignal       = 4
)

// MaxMessageSize is the largest message the D-Bus specification allows (2^27).
const MaxMessageSize = 1 << 27

// HeaderSize is the size of the fixed part of a message header.
const HeaderSize = 16

// Limits of the specification.
const (
	maxArrayLen   = 1 << 26 // bytes of one array's elements
	maxSigLen     = 255     // bytes of one signature
	maxArrayDepth = 32      // arrays nested in one signature
	maxStructNest = 32      // structs and dict entries nested in one signature
	maxDepth      = 64      // containers around a value, variants included
)

// FlagNoReplyExpected is the NO_REPLY_EXPECTED message flag.
const FlagNoReplyExpected = 0x1

// Header field codes of the D-Bus specification.
const (
	FieldPath        = 1
	FieldInterface   = 2
	FieldMember      = 3
	FieldErrorName   = 4
	FieldReplySerial = 5
	FieldDestination = 6
	FieldSender      = 7
	FieldSignature   = 8
	FieldUnixFDs     = 9
	fieldLast        = FieldUnixFDs
)

// Reasons for refusing input. They are wrapped with the offset where the
// problem was found.
var (
	errShort        = errors.New("truncated data")
	errEndian       = errors.New("bad endianness byte")
	errVersion      = errors.New("unsupported protocol version")
	errType         = errors.New("invalid message type 0")
	errTooBig       = errors.New("message larger than 2^27 bytes")
	errFrameLen     = errors.New("buffer length differs from the frame size")
	errSerial       = errors.New("serial is 0")
	errReplySerial  = errors.New("reply serial is 0")
	errFieldCode    = errors.New("header field code 0")
	errFieldDup     = errors.New("header field appears twice")
	errFieldType    = errors.New("header field has the wrong type")
	errFieldMissing = errors.New("required header field missing")
	errPath         = errors.New("invalid object path")
	errInterface    = errors.New("invalid interface name")
	errMember       = errors.New("invalid member name")
	errErrorName    = errors.New("invalid error name")
	errBusName      = errors.New("invalid bus name")
	errLocal        = errors.New("reserved local path or interface")
	errBodySig      = errors.New("body and signature field disagree")
	errPadding      = errors.New("non-zero padding")
	errNUL          = errors.New("string contains NUL")
	errUTF8         = errors.New("string is not valid UTF-8")
	errNoTerm       = errors.New("string or signature not NUL-terminated")
	errSignature    = errors.New("invalid signature")
	errSingle       = errors.New("signature is not a single complete type")
	errBool         = errors.New("boolean is neither 0 nor 1")
	errArrayLen     = errors.New("array longer than 2^26 bytes")
	errArrayEnd     = errors.New("array elements do not end at the array length")
	errDepth        = errors.New("values nested too deeply")
	errFD           = errors.New("unix fd values are not supported")
	errTrailing     = errors.New("unread data at the end of the body")
)

// offsetError says where in its input a problem was found.
type offsetError struct {
	off int
	err error
}

func (e *offsetError) Error() string {
	return "wire: " + e.err.Error() + " at offset " + strconv.Itoa(e.off)
}

func (e *offsetError) Unwrap() error { return e.err }

// failAt wraps err with the offset off.
func failAt(off int, err error) error {
	return &offsetError{off, err}
}
