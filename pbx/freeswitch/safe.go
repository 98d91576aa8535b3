package freeswitch

import (
	"fmt"
	"strconv"
)

// UnsafeValueError is returned, before anything is sent, for a value that
// holds a control character: ESL is line framed, so a CR or LF in a
// target, a variable or a path would end the command and start another,
// and eslgo interpolates values unescaped.
type UnsafeValueError struct {
	Field string // what the value is, e.g. "uuid_setvar value"
	Index int    // byte offset of the first control character
}

func (e *UnsafeValueError) Error() string {
	return fmt.Sprintf("freeswitch: %s has a control character at byte %d; refused", e.Field, e.Index)
}

// checkValue refuses a value with a control character (below 0x20, or
// DEL): CR, LF, NUL, TAB and the rest.
func checkValue(field, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return &UnsafeValueError{Field: field, Index: i}
		}
	}
	return nil
}

// checkValues checks each value, named field[i].
func checkValues(field string, vs ...string) error {
	for i, v := range vs {
		if err := checkValue(field+"["+strconv.Itoa(i)+"]", v); err != nil {
			return err
		}
	}
	return nil
}
