// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxLineLength is the longest accepted physical line in bytes, including
// its terminating newline. Upstream reads lines into a 520-byte buffer and
// silently splits longer lines; this package rejects them instead.
const MaxLineLength = 519

// MaxSectionNameLength is the number of bytes of a section name that are
// kept; longer names are truncated (upstream uses a 50-byte buffer).
const MaxSectionNameLength = 49

// Parse error reasons, as they appear after "FILE:LINE: " in ParseError texts.
const (
	ReasonMissingBracket = "missing ']'"
	ReasonMissingEquals  = "missing '=' or ':'"
)

// ParseError is a syntax error in a configuration file. Its text is
// "FILE:LINE: reason".
type ParseError struct {
	File   string // file name as given to Parse / ParseFile
	Line   int    // 1-based line number
	Reason string // human-readable reason
}

// Error returns "FILE:LINE: reason".
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// Entry is one key of a parsed file after duplicate keys and continuation
// lines have been folded into a single value.
type Entry struct {
	Section string // section name ("" for keys before the first section)
	Key     string
	Value   string // "" means "no value" (unsets the key when merged)
	Line    int    // line on which the (first non-empty part of the) value was given
}

// File is the result of parsing one configuration file.
type File struct {
	Name    string  // file name used in error messages and sources
	Entries []Entry // keys in order of first appearance
}

// Lookup returns the entry for section/key and whether the file contains it.
func (f *File) Lookup(section, key string) (Entry, bool) {
	for _, e := range f.Entries {
		if e.Section == section && e.Key == key {
			return e, true
		}
	}
	return Entry{}, false
}

// ParseFile opens and parses the file at path. I/O errors are returned
// wrapped (errors.Is(err, fs.ErrNotExist) works); syntax errors are
// *ParseError values.
func ParseFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration file: %w", err)
	}
	defer fh.Close()
	return Parse(path, fh)
}

// Parse reads INI text from r using the inih semantics described in
// config.md §1. name is used in error messages and as the source of every
// entry. Parsing stops at the first syntax error.
func Parse(name string, r io.Reader) (*File, error) {
	p := fileBuilder{file: &File{Name: name}, index: map[[2]string]int{}}
	br := bufio.NewReaderSize(r, 4096)

	section := ""
	prevName := ""
	for lineno := 1; ; lineno++ {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(raw) > MaxLineLength {
			return nil, &ParseError{File: name, Line: lineno,
				Reason: fmt.Sprintf("line too long (more than %d bytes including newline)", MaxLineLength)}
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if len(raw) == 0 && err == io.EOF {
			break
		}

		line := raw
		line = bytes.TrimSuffix(line, []byte{'\n'})
		if i := bytes.IndexByte(line, 0); i >= 0 {
			// C strings end at the first NUL byte.
			line = line[:i]
		}
		if lineno == 1 {
			line = bytes.TrimPrefix(line, []byte{0xEF, 0xBB, 0xBF})
		}
		text := string(line)

		indented := len(text) > 0 && isSpace(text[0])
		start := trimSpace(text)

		switch {
		case start == "" || start[0] == ';' || start[0] == '#':
			// Blank line or start-of-line comment.
		case prevName != "" && indented:
			// Continuation of the previous key's value.
			v := rstrip(start[:findCharsOrComment(start, "")])
			p.add(section, prevName, v, lineno)
		case start[0] == '[':
			rest := start[1:]
			end := findCharsOrComment(rest, "]")
			if end >= len(rest) || rest[end] != ']' {
				return nil, &ParseError{File: name, Line: lineno, Reason: ReasonMissingBracket}
			}
			section = rest[:end]
			if len(section) > MaxSectionNameLength {
				section = section[:MaxSectionNameLength]
			}
			prevName = ""
		default:
			end := findCharsOrComment(start, "=:")
			if end >= len(start) || (start[end] != '=' && start[end] != ':') {
				return nil, &ParseError{File: name, Line: lineno, Reason: ReasonMissingEquals}
			}
			key := rstrip(start[:end])
			value := start[end+1:]
			value = trimSpace(value[:findCharsOrComment(value, "")])
			prevName = key
			p.add(section, key, value, lineno)
		}

		if err == io.EOF {
			break
		}
	}
	return p.file, nil
}

// fileBuilder folds repeated keys of one file into single entries.
type fileBuilder struct {
	file  *File
	index map[[2]string]int
}

// add records a value for section/key. Like upstream's handler, a value for
// a key that already has a non-empty value in this file is appended without
// separator; otherwise it replaces the (absent or empty) value.
func (b *fileBuilder) add(section, key, value string, line int) {
	k := [2]string{section, key}
	if i, ok := b.index[k]; ok {
		e := &b.file.Entries[i]
		if e.Value != "" {
			e.Value += value
		} else {
			e.Value = value
			e.Line = line
		}
		return
	}
	b.index[k] = len(b.file.Entries)
	b.file.Entries = append(b.file.Entries, Entry{Section: section, Key: key, Value: value, Line: line})
}

// findCharsOrComment returns the index of the first byte of s that is in
// chars or that starts an inline comment (a ';' preceded by whitespace), or
// len(s) if there is none.
func findCharsOrComment(s, chars string) int {
	wasSpace := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(chars, c) >= 0 || (wasSpace && c == ';') {
			return i
		}
		wasSpace = isSpace(c)
	}
	return len(s)
}

// isSpace reports whether c is whitespace in the C locale.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// rstrip removes trailing C-locale whitespace.
func rstrip(s string) string {
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// lskip removes leading C-locale whitespace.
func lskip(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// trimSpace removes leading and trailing C-locale whitespace.
func trimSpace(s string) string { return rstrip(lskip(s)) }
