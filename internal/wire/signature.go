// SPDX-License-Identifier: Apache-2.0

package wire

// ValidSignature reports whether sig is a valid D-Bus signature: at most 255
// bytes of zero or more complete types, with no more than 32 arrays and 32
// structs or dict entries nested in each other, dict entries only as the
// element type of an array and with a basic key, and no empty struct.
func ValidSignature(sig string) bool {
	if len(sig) > maxSigLen {
		return false
	}
	for i := 0; i < len(sig); {
		if i = sigNext(sig, i, 0, 0); i < 0 {
			return false
		}
	}
	return true
}

// validSingle reports whether sig is a valid signature of exactly one
// complete type.
func validSingle(sig string) bool {
	return len(sig) <= maxSigLen && len(sig) > 0 && sigNext(sig, 0, 0, 0) == len(sig)
}

// sigNext checks the complete type that starts at sig[i], which is nested in
// arr arrays and st structs or dict entries, and returns the index after it,
// or -1 if it is not valid. Recursion is bounded by the nesting limits.
func sigNext(sig string, i, arr, st int) int {
	if i >= len(sig) {
		return -1
	}
	switch sig[i] {
	case 'y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 'h', 's', 'o', 'g', 'v':
		return i + 1
	case 'a':
		if arr >= maxArrayDepth {
			return -1
		}
		i++
		if i < len(sig) && sig[i] == '{' {
			if st >= maxStructNest || i+1 >= len(sig) || !isBasic(sig[i+1]) {
				return -1
			}
			j := sigNext(sig, i+2, arr+1, st+1)
			if j < 0 || j >= len(sig) || sig[j] != '}' {
				return -1
			}
			return j + 1
		}
		return sigNext(sig, i, arr+1, st)
	case '(':
		if st >= maxStructNest {
			return -1
		}
		i++
		if i < len(sig) && sig[i] == ')' {
			return -1 // a struct has at least one field
		}
		for i < len(sig) {
			if sig[i] == ')' {
				return i + 1
			}
			if i = sigNext(sig, i, arr, st+1); i < 0 {
				return -1
			}
		}
		return -1
	}
	return -1 // unknown code, or ')', '{', '}' out of place
}

// isBasic reports whether c is the code of a basic type.
func isBasic(c byte) bool {
	switch c {
	case 'y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 'h', 's', 'o', 'g':
		return true
	}
	return false
}

// alignOf returns the alignment of values of the type whose signature starts
// with c (a valid type code).
func alignOf(c byte) int {
	switch c {
	case 'n', 'q':
		return 2
	case 'b', 'i', 'u', 'h', 's', 'o', 'a':
		return 4
	case 'x', 't', 'd', '(', '{':
		return 8
	}
	return 1 // y, g, v
}

// fixedSize returns the size of the fixed-size basic type c, or 0 for other
// types. The size of these types equals their alignment, so arrays of them
// hold no padding.
func fixedSize(c byte) int {
	switch c {
	case 'y':
		return 1
	case 'n', 'q':
		return 2
	case 'b', 'i', 'u', 'h':
		return 4
	case 'x', 't', 'd':
		return 8
	}
	return 0
}

// skipType returns the index after the complete type at sig[i] of an
// already validated signature.
func skipType(sig string, i int) int {
	depth := 0
	for {
		c := sig[i]
		i++
		switch c {
		case 'a':
			continue
		case '(', '{':
			depth++
		case ')', '}':
			depth--
		}
		if depth == 0 {
			return i
		}
	}
}

// ArgSignature returns the signature of argument n (from 0) of the valid
// signature sig, or "" if sig has fewer arguments: code that copies one
// argument as it is takes its type from the member's signature.
func ArgSignature(sig string, n int) string {
	for i := 0; i < len(sig); n-- {
		end := skipType(sig, i)
		if n == 0 {
			return sig[i:end]
		}
		i = end
	}
	return ""
}
