package httpapi

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// The edge's checks of client text: what the database cannot store (NUL,
// invalid UTF-8) is refused here, naming the field, before it gets there.

// checkText refuses s unless it is valid UTF-8 without NUL.
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return ragpipe.FieldErrorf(field, "must be valid UTF-8")
	}
	if strings.ContainsRune(s, 0) {
		return ragpipe.FieldErrorf(field, "must not contain NUL characters")
	}
	return nil
}

// checkJSONText refuses a decoded JSON value holding, in any key or string,
// what checkText refuses.
func checkJSONText(field string, v any) error {
	switch x := v.(type) {
	case string:
		return checkText(field, x)
	case []any:
		for _, e := range x {
			if err := checkJSONText(field, e); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range x {
			if err := checkText(field, k); err != nil {
				return err
			}
			if err := checkJSONText(field, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// displayName makes a client-given name fit to show and log: valid UTF-8
// without control characters or bidirectional overrides, at most max bytes.
func displayName(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
