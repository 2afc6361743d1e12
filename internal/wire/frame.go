// SPDX-License-Identifier: Apache-2.0

package wire

// FrameSize returns the total size in bytes (fixed header, header field
// array, padding to 8 and body) of the message whose first HeaderSize bytes
// are hdr, and the message type. It fails on an endianness byte other than
// 'l' or 'B', a protocol version other than 1, message type 0 or a total
// size above MaxMessageSize.
func FrameSize(hdr []byte) (size int, typ byte, err error) {
	if len(hdr) < HeaderSize {
		return 0, 0, failAt(len(hdr), errShort)
	}
	var big bool
	switch hdr[0] {
	case 'l':
	case 'B':
		big = true
	default:
		return 0, 0, failAt(0, errEndian)
	}
	if hdr[1] == 0 {
		return 0, 0, failAt(1, errType)
	}
	if hdr[3] != 1 {
		return 0, 0, failAt(3, errVersion)
	}
	body := uint64(uint32At(hdr, 4, big))
	fields := uint64(uint32At(hdr, 12, big))
	total := HeaderSize + fields + (-fields & 7) + body
	if total > MaxMessageSize {
		return 0, 0, failAt(4, errTooBig)
	}
	return int(total), hdr[1], nil
}

// Message is a parsed message. Its strings are copies; Body aliases the
// buffer given to Parse.
type Message struct {
	BigEndian   bool
	Type, Flags byte
	Serial      uint32
	ReplySerial uint32

	Path, Interface, Member, ErrorName, Destination, Sender, Signature string

	Body []byte
}

// fieldTypes holds the type code of each known header field.
var fieldTypes = [fieldLast + 1]byte{
	FieldPath:        'o',
	FieldInterface:   's',
	FieldMember:      's',
	FieldErrorName:   's',
	FieldReplySerial: 'u',
	FieldDestination: 's',
	FieldSender:      's',
	FieldSignature:   'g',
	FieldUnixFDs:     'u',
}

// requiredFields holds, per known message type, the header fields that must
// be present, as a bit set of field codes.
var requiredFields = [TypeSignal + 1]uint16{
	TypeMethodCall:   1<<FieldPath | 1<<FieldMember,
	TypeMethodReturn: 1 << FieldReplySerial,
	TypeError:        1<<FieldErrorName | 1<<FieldReplySerial,
	TypeSignal:       1<<FieldPath | 1<<FieldInterface | 1<<FieldMember,
}

const (
	localPath      = "/org/freedesktop/DBus/Local"
	localInterface = "org.freedesktop.DBus.Local"
)

// Parse parses one complete message (exactly FrameSize bytes) into m, after
// resetting all of m's fields.
//
// It checks the header as the message bus does: serial not 0; the header
// field array well-formed (alignment, zero padding, length); known fields
// of the right type, at most once, with valid values (object path,
// interface, member, error and bus names, signature, reply serial not 0;
// the reserved local path and interface are refused); unknown fields
// skipped but well-formed; the fields required by the message type present;
// a body only with a non-empty SIGNATURE field. It does not check the body.
//
// Only the header strings are allocated, in one allocation: they do not
// alias buf. m.Body does. On error m is left zero.
func Parse(buf []byte, m *Message) error {
	*m = Message{}
	if err := parse(buf, m); err != nil {
		*m = Message{}
		return err
	}
	return nil
}

func parse(buf []byte, m *Message) error {
	size, typ, err := FrameSize(buf)
	if err != nil {
		return err
	}
	if len(buf) != size {
		return failAt(len(buf), errFrameLen)
	}
	big := buf[0] == 'B'
	m.BigEndian, m.Type, m.Flags = big, typ, buf[2]
	if m.Serial = uint32At(buf, 8, big); m.Serial == 0 {
		return failAt(8, errSerial)
	}
	flen := uint32At(buf, 12, big)
	if flen > maxArrayLen {
		return failAt(12, errArrayLen)
	}
	fend := HeaderSize + int(flen)

	// Walk the header fields. The strings are remembered as positions
	// and made into strings at the end.
	c := copier{src: buf[:fend], off: HeaderSize, big: big, fds: true}
	var seen uint16
	var span [fieldLast + 1][2]int
	for c.off < fend {
		if err := skipPadding(c.src, &c.off, 8); err != nil {
			return err
		}
		if c.off >= fend {
			return failAt(c.off, errArrayEnd)
		}
		at := c.off
		code := buf[at]
		c.off++
		if code == 0 {
			return failAt(at, errFieldCode)
		}
		if code > fieldLast {
			// Unknown: skipped, but it must be a valid variant, at
			// the depth a field's value has in the header.
			if _, err := c.value("v", 0, 2); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<code) != 0 {
			return failAt(at, errFieldDup)
		}
		seen |= 1 << code
		want := fieldTypes[code]
		if fend-c.off < 3 {
			return failAt(c.off, errShort)
		}
		if buf[c.off] != 1 || buf[c.off+1] != want || buf[c.off+2] != 0 {
			return failAt(c.off, errFieldType)
		}
		c.off += 3
		switch want {
		case 'u':
			if err := skipPadding(c.src, &c.off, 4); err != nil {
				return err
			}
			if fend-c.off < 4 {
				return failAt(c.off, errShort)
			}
			v := uint32At(buf, c.off, big)
			c.off += 4
			if code == FieldReplySerial {
				if v == 0 {
					return failAt(c.off-4, errReplySerial)
				}
				m.ReplySerial = v
			}
		case 'g':
			start := c.off
			s, err := readSignature(c.src, &c.off)
			if err != nil {
				return err
			}
			if !ValidSignature(s) {
				return failAt(start, errSignature)
			}
			span[code] = [2]int{start + 1, start + 1 + len(s)}
		default: // 's', 'o'
			start := c.off
			b, err := readString(c.src, &c.off, big)
			if err != nil {
				return err
			}
			if err := checkField(code, b); err != nil {
				return failAt(start, err)
			}
			end := c.off - 1
			span[code] = [2]int{end - len(b), end}
		}
	}

	// Padding up to the body.
	bodyAt := (fend + 7) &^ 7
	for i := fend; i < bodyAt; i++ {
		if buf[i] != 0 {
			return failAt(i, errPadding)
		}
	}
	m.Body = buf[bodyAt:]

	if typ <= TypeSignal && seen&requiredFields[typ] != requiredFields[typ] {
		return failAt(HeaderSize, errFieldMissing)
	}
	sigLen := span[FieldSignature][1] - span[FieldSignature][0]
	if (len(m.Body) == 0) != (sigLen == 0) {
		return failAt(bodyAt, errBodySig)
	}

	// One allocation for all the strings of the header.
	if seen&(1<<FieldPath|1<<FieldInterface|1<<FieldMember|1<<FieldErrorName|
		1<<FieldDestination|1<<FieldSender|1<<FieldSignature) != 0 {
		hs := string(buf[HeaderSize:fend])
		get := func(code int) string {
			if span[code][1] == 0 {
				return "" // absent
			}
			return hs[span[code][0]-HeaderSize : span[code][1]-HeaderSize]
		}
		m.Path = get(FieldPath)
		m.Interface = get(FieldInterface)
		m.Member = get(FieldMember)
		m.ErrorName = get(FieldErrorName)
		m.Destination = get(FieldDestination)
		m.Sender = get(FieldSender)
		m.Signature = get(FieldSignature)
	}
	return nil
}

// checkField checks the value of a string or object path header field.
func checkField(code byte, b []byte) error {
	switch code {
	case FieldPath:
		if !validPath(b) {
			return errPath
		}
		if string(b) == localPath {
			return errLocal
		}
	case FieldInterface:
		if !validDotted(b) {
			return errInterface
		}
		if string(b) == localInterface {
			return errLocal
		}
	case FieldMember:
		if !validMember(b) {
			return errMember
		}
	case FieldErrorName:
		if !validDotted(b) {
			return errErrorName
		}
	default: // destination, sender
		if !validBusName(b) {
			return errBusName
		}
	}
	return nil
}
